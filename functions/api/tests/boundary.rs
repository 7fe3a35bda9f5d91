//! Download users are created with the permissions boundary the template
//! requires (`template.yaml`: `iam:CreateUser` only with
//! `iam:PermissionsBoundary` = `ExportUserBoundary`): a `CreateUser`
//! without it would be refused after a deploy. moto keeps no boundary of
//! users, so the request itself is checked (aws-smithy-mocks).

use aws_sdk_iam::operation::create_access_key::CreateAccessKeyOutput;
use aws_sdk_iam::operation::create_user::CreateUserOutput;
use aws_sdk_iam::operation::list_users::ListUsersOutput;
use aws_sdk_iam::operation::put_user_policy::PutUserPolicyOutput;
use aws_sdk_iam::types::{AccessKey, StatusType};
use aws_sdk_iam::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use dpl::export::access::ExportAccess;

const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/dpl-export-boundary";

#[tokio::test]
async fn download_users_are_created_within_the_boundary() {
    let create_user = mock!(Client::create_user)
        .match_requests(|r| {
            r.user_name() == Some("dpl-export-abcd1234")
                && r.permissions_boundary() == Some(BOUNDARY)
        })
        .then_output(|| CreateUserOutput::builder().build());
    let put_policy =
        mock!(Client::put_user_policy).then_output(|| PutUserPolicyOutput::builder().build());
    let key = mock!(Client::create_access_key).then_output(|| {
        CreateAccessKeyOutput::builder()
            .access_key(
                AccessKey::builder()
                    .user_name("dpl-export-abcd1234")
                    .access_key_id("AKIAIOSFODNN7EXAMPLE")
                    .secret_access_key("s")
                    .status(StatusType::Active)
                    .build()
                    .unwrap(),
            )
            .build()
    });
    // No other download user: no OEM id of another case to collide with.
    let users = mock!(Client::list_users).then_output(|| {
        ListUsersOutput::builder()
            .set_users(Some(vec![]))
            .build()
            .unwrap()
    });
    let client = mock_client!(
        aws_sdk_iam,
        RuleMode::MatchAny,
        &[&users, &create_user, &put_policy, &key]
    );
    let access = ExportAccess::new(client).with_boundary(Some(BOUNDARY.into()));
    let created = access
        .create("dpl-export-abcd1234", "{}", "abcd1234")
        .await
        .unwrap();
    assert_eq!(created.access_key_id, "AKIAIOSFODNN7EXAMPLE");
    assert_eq!(
        create_user.num_calls(),
        1,
        "CreateUser was sent without the boundary"
    );
}
