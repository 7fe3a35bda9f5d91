//! HTTP bursts: whether the proxy answers a request itself, and the answer
//! it gives (a complete keep-alive response, so the client's connection
//! survives the error as it would with a real throttling server).

use crate::faults::{BurstMode, Faults, HttpBurst};

/// Decides for one request, consuming one of a counted burst's requests:
/// the burst to answer with, or `None` to forward. `roll` is uniform in
/// [0, 1) and decides probability bursts. Returns whether `faults` changed.
pub(crate) fn decide(faults: &mut Faults, roll: f64) -> (Option<HttpBurst>, bool) {
    let Some(burst) = &mut faults.http_burst else {
        return (None, false);
    };
    match &mut burst.mode {
        BurstMode::Probability(p) => ((roll < *p).then(|| burst.clone()), false),
        BurstMode::Count(0) => {
            faults.http_burst = None;
            (None, true)
        }
        BurstMode::Count(left) => {
            *left -= 1;
            let exhausted = *left == 0;
            let answer = burst.clone();
            if exhausted {
                faults.http_burst = None;
            }
            (Some(answer), true)
        }
    }
}

/// The reason phrase clients log next to the status (RFC 9110 §15).
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

/// The complete response for `burst`.
pub(crate) fn render(burst: &HttpBurst) -> Vec<u8> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n",
        burst.status,
        reason(burst.status),
        burst.content_type,
        burst.body.len()
    );
    let mut response = head.into_bytes();
    response.extend_from_slice(burst.body.as_bytes());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_burst(burst: HttpBurst) -> Faults {
        Faults {
            http_burst: Some(burst),
            ..Faults::default()
        }
    }

    #[test]
    fn a_counted_burst_answers_exactly_its_count_then_clears_itself() {
        let mut faults = with_burst(HttpBurst::count(503, 2));
        assert!(matches!(decide(&mut faults, 0.9), (Some(_), true)));
        assert_eq!(
            faults.http_burst.as_ref().map(|b| b.mode),
            Some(BurstMode::Count(1))
        );
        assert!(matches!(decide(&mut faults, 0.9), (Some(_), true)));
        assert_eq!(faults.http_burst, None);
        assert!(matches!(decide(&mut faults, 0.0), (None, false)));
    }

    #[test]
    fn a_probability_burst_answers_when_the_roll_is_below_it() {
        let mut faults = with_burst(HttpBurst::probability(429, 0.3));
        assert!(matches!(decide(&mut faults, 0.29), (Some(_), false)));
        assert!(matches!(decide(&mut faults, 0.3), (None, false)));
        assert!(faults.http_burst.is_some());
    }

    #[test]
    fn the_answer_is_a_keep_alive_response_with_the_body_length() {
        let burst = HttpBurst::count(400, 1).with_body(
            "application/x-amz-json-1.1",
            r#"{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded"}"#,
        );
        let response = String::from_utf8(render(&burst)).unwrap();
        assert_eq!(
            response,
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\n\
             Content-Length: 77\r\nConnection: keep-alive\r\n\r\n\
             {\"__type\":\"ProvisionedThroughputExceededException\",\"message\":\"Rate exceeded\"}"
        );
    }
}
