#!/usr/bin/env python3
"""Create the resources template.yaml declares in a local AWS emulator (moto).

    .venv/bin/python scripts/create-resources.py [--prefix demo] [--template template.yaml]

The endpoint comes from the standard AWS_ENDPOINT_URL variable (as the SDKs
use it); anything else than a loopback endpoint is refused, so this never
creates resources in a real account.

Reads the template (CloudFormation tags such as !Ref, !GetAtt and !Sub are
read as their long forms), creates every resource of a supported type under
the name `{prefix}-{LogicalId}` (buckets lowercased), and prints one JSON
document on stdout for the demo (`tools/demo`):

- `resources`: per logical id, its type, what `Ref` gives (table, stream or
  bucket name, queue URL) and its attributes (`Arn`, `StreamArn`,
  `QueueName`);
- `functions`: per function, its binary (`BuildProperties.Binary`), its
  `Environment.Variables` with every intrinsic resolved (parameters take
  their defaults), and its event source mappings (DynamoDB, Kinesis, SQS)
  with batch sizes, retries and failure destinations resolved;
- `skipped`: resources created in AWS by the deployment but not needed to
  run the functions in-process (functions, roles, log groups, schedules,
  alarms, bucket policies), by logical id and type.

A progress line per resource goes to stderr.
"""

import argparse
import ipaddress
import json
import os
import sys
import urllib.parse

import boto3
import yaml

SUPPORTED = (
    "AWS::DynamoDB::Table",
    "AWS::Kinesis::Stream",
    "AWS::SQS::Queue",
    "AWS::S3::Bucket",
)
ACCOUNT_ID = "123456789012"  # moto's default account


class TemplateLoader(yaml.SafeLoader):
    """A YAML loader that reads CloudFormation short-form tags."""


def _intrinsic(loader, tag_suffix, node):
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if name == "Fn::GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


TemplateLoader.add_multi_constructor("!", _intrinsic)


class Unresolved(Exception):
    """An intrinsic naming something this script does not create."""


class Stack:
    def __init__(self, template, prefix, region):
        self.template = template
        self.prefix = prefix
        self.region = region
        self.parameters = {
            name: spec.get("Default")
            for name, spec in template.get("Parameters", {}).items()
        }
        self.resources = {}  # logical id -> {"type", "ref", "attributes"}

    def pseudo(self, name):
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::StackName": self.prefix,
            "AWS::URLSuffix": "amazonaws.com",
        }.get(name)

    def ref(self, name):
        if name in self.parameters:
            return self.parameters[name]
        pseudo = self.pseudo(name)
        if pseudo is not None:
            return pseudo
        if name in self.resources:
            return self.resources[name]["ref"]
        raise Unresolved(name)

    def get_att(self, logical_id, attribute):
        try:
            return self.resources[logical_id]["attributes"][attribute]
        except KeyError:
            raise Unresolved(f"{logical_id}.{attribute}") from None

    def resolve(self, value):
        """`value` with every intrinsic replaced by its value."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                parts = arg.split(".", 1) if isinstance(arg, str) else arg
                return self.get_att(*parts)
            if key == "Fn::Sub":
                return self.sub(arg)
            if key == "Fn::Join":
                separator, items = arg
                return separator.join(str(i) for i in self.resolve(items))
            if key.startswith("Fn::"):
                raise Unresolved(key)
        return {k: self.resolve(v) for k, v in value.items()}

    def sub(self, arg):
        text, variables = (arg, {}) if isinstance(arg, str) else arg
        variables = {k: self.resolve(v) for k, v in variables.items()}
        out, rest = [], text
        while "${" in rest:
            before, _, after = rest.partition("${")
            name, _, rest = after.partition("}")
            out.append(before)
            if name in variables:
                out.append(str(variables[name]))
            elif "." in name:
                out.append(str(self.get_att(*name.split(".", 1))))
            else:
                out.append(str(self.ref(name)))
        out.append(rest)
        return "".join(out)


def physical_name(prefix, logical_id, resource_type):
    name = f"{prefix}-{logical_id}"
    return name.lower() if resource_type == "AWS::S3::Bucket" else name


def create_table(clients, stack, logical_id, props):
    name = physical_name(stack.prefix, logical_id, "AWS::DynamoDB::Table")
    request = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if "ProvisionedThroughput" in props:
        request["ProvisionedThroughput"] = props["ProvisionedThroughput"]
    stream = props.get("StreamSpecification")
    if stream:
        request["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": stream["StreamViewType"],
        }
    table = clients("dynamodb").create_table(**request)["TableDescription"]
    attributes = {"Arn": table["TableArn"]}
    if stream:
        attributes["StreamArn"] = table["LatestStreamArn"]
    return name, attributes


def create_stream(clients, stack, logical_id, props):
    name = physical_name(stack.prefix, logical_id, "AWS::Kinesis::Stream")
    kinesis = clients("kinesis")
    request = {"StreamName": name}
    mode = props.get("StreamModeDetails", {}).get("StreamMode", "PROVISIONED")
    request["StreamModeDetails"] = {"StreamMode": mode}
    if mode == "PROVISIONED":
        request["ShardCount"] = int(props.get("ShardCount", 1))
    kinesis.create_stream(**request)
    kinesis.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    retention = int(stack.resolve(props.get("RetentionPeriodHours", 24)))
    if retention > 24:
        kinesis.increase_stream_retention_period(
            StreamName=name, RetentionPeriodHours=retention
        )
    summary = kinesis.describe_stream_summary(StreamName=name)
    return name, {"Arn": summary["StreamDescriptionSummary"]["StreamARN"]}


QUEUE_ATTRIBUTES = ("MessageRetentionPeriod", "VisibilityTimeout", "DelaySeconds",
                    "MaximumMessageSize", "ReceiveMessageWaitTimeSeconds",
                    "SqsManagedSseEnabled")


def create_queue(clients, stack, logical_id, props):
    name = physical_name(stack.prefix, logical_id, "AWS::SQS::Queue")
    attributes = {
        k: str(props[k]).lower() if isinstance(props[k], bool) else str(props[k])
        for k in QUEUE_ATTRIBUTES
        if k in props
    }
    sqs = clients("sqs")
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    return url, {"Arn": arn, "QueueName": name, "QueueUrl": url}


def create_bucket(clients, stack, logical_id, props):
    name = physical_name(stack.prefix, logical_id, "AWS::S3::Bucket")
    s3 = clients("s3")
    if stack.region == "us-east-1":
        s3.create_bucket(Bucket=name)
    else:
        s3.create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": stack.region}
        )
    return name, {"Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}


CREATORS = {
    "AWS::DynamoDB::Table": create_table,
    "AWS::Kinesis::Stream": create_stream,
    "AWS::SQS::Queue": create_queue,
    "AWS::S3::Bucket": create_bucket,
}


def redrive_policies(clients, stack, definitions):
    """Queue redrive policies, once every queue they name exists."""
    for logical_id, definition in definitions.items():
        if definition["Type"] != "AWS::SQS::Queue":
            continue
        policy = definition.get("Properties", {}).get("RedrivePolicy")
        if policy:
            clients("sqs").set_queue_attributes(
                QueueUrl=stack.resources[logical_id]["ref"],
                Attributes={"RedrivePolicy": json.dumps(stack.resolve(policy))},
            )


def mapping(stack, kind, props):
    """One event source mapping, resolved."""
    def number(key, default=None):
        value = stack.resolve(props.get(key, default))
        return None if value is None else int(value)

    source = props.get("Stream") or props.get("Queue") or props.get("EventSourceArn")
    on_failure = (
        props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
    )
    return {
        "type": kind,
        "source_arn": stack.resolve(source),
        "batch_size": number("BatchSize"),
        "maximum_batching_window_seconds": number("MaximumBatchingWindowInSeconds", 0),
        "starting_position": props.get("StartingPosition"),
        "report_batch_item_failures": "ReportBatchItemFailures"
        in (props.get("FunctionResponseTypes") or []),
        "bisect_batch_on_function_error": bool(
            props.get("BisectBatchOnFunctionError", False)
        ),
        "maximum_retry_attempts": number("MaximumRetryAttempts"),
        "on_failure_arn": stack.resolve(on_failure) if on_failure else None,
    }


def functions(stack, definitions):
    defaults = stack.template.get("Globals", {}).get("Function", {})
    out = {}
    for logical_id, definition in definitions.items():
        if definition["Type"] != "AWS::Serverless::Function":
            continue
        props = definition.get("Properties", {})
        environment, unresolved = {}, []
        variables = props.get("Environment", {}).get("Variables", {})
        for name, value in variables.items():
            try:
                environment[name] = str(stack.resolve(value))
            except Unresolved as missing:
                unresolved.append(f"{name} ({missing})")
        sources = [
            mapping(stack, event["Type"], event.get("Properties", {}))
            for event in props.get("Events", {}).values()
            if event.get("Type") in ("DynamoDB", "Kinesis", "SQS")
        ]
        out[logical_id] = {
            "binary": definition.get("Metadata", {})
            .get("BuildProperties", {})
            .get("Binary", logical_id),
            "environment": environment,
            "unresolved_environment": unresolved,
            "event_sources": sources,
            "timeout_seconds": int(stack.resolve(props.get("Timeout", defaults.get("Timeout", 3)))),
        }
    for definition in definitions.values():
        if definition["Type"] == "AWS::Lambda::EventSourceMapping":
            props = definition.get("Properties", {})
            function = props.get("FunctionName", {}).get("Ref")
            if function in out:
                service = str(stack.resolve(props["EventSourceArn"])).split(":")[2]
                kind = {"sqs": "SQS", "dynamodb": "DynamoDB", "kinesis": "Kinesis"}[service]
                out[function]["event_sources"].append(mapping(stack, kind, props))
    return out


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default="demo")
    parser.add_argument("--template", default=os.path.join(root, "template.yaml"))
    args = parser.parse_args()

    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    host = urllib.parse.urlparse(endpoint).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        sys.exit(
            f"create-resources: AWS_ENDPOINT_URL must be a local emulator "
            f"(http://127.0.0.1:PORT), found {endpoint!r}; run it through scripts/with-moto.sh"
        )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"

    with open(args.template, encoding="utf-8") as f:
        template = yaml.load(f, Loader=TemplateLoader)  # noqa: S506 (SafeLoader subclass)
    definitions = template.get("Resources", {})
    stack = Stack(template, args.prefix, region)
    cache = {}

    def clients(service):
        if service not in cache:
            cache[service] = boto3.client(service, endpoint_url=endpoint, region_name=region)
        return cache[service]

    skipped = {}
    for logical_id, definition in definitions.items():
        kind = definition["Type"]
        if kind not in SUPPORTED:
            skipped[logical_id] = kind
            continue
        props = definition.get("Properties", {})
        ref, attributes = CREATORS[kind](clients, stack, logical_id, props)
        stack.resources[logical_id] = {"type": kind, "ref": ref, "attributes": attributes}
        print(f"create-resources: {kind:<22} {logical_id:<32} {ref}", file=sys.stderr)
    redrive_policies(clients, stack, definitions)

    json.dump(
        {
            "prefix": args.prefix,
            "region": region,
            "account_id": ACCOUNT_ID,
            "resources": stack.resources,
            "functions": functions(stack, definitions),
            "skipped": skipped,
        },
        sys.stdout,
        indent=2,
        sort_keys=True,
    )
    print()


if __name__ == "__main__":
    main()
