#!/usr/bin/env bash
# A local AWS for trying the functions by hand with cargo-lambda:
#   scripts/emulator.sh [PORT]        (default 5555; `make emulator`)
# Starts moto on 127.0.0.1:PORT in the foreground, creates what the functions
# read and write (DPL stream `dpl`, dead-letter queue `twin-events-dlq`,
# bucket `dpl-data`), installs cargo-lambda into .venv/ when missing, and
# writes target/emulator.env for other terminals to `source`. Ctrl-C stops it.
set -euo pipefail

PORT="${1:-5555}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
"$ROOT/scripts/venv.sh"
"$ROOT/scripts/cargo-lambda.sh" --version >/dev/null   # installs the pinned cargo-lambda
mkdir -p "$ROOT/target"

ENDPOINT="http://127.0.0.1:$PORT"
cat >"$ROOT/target/emulator.env" <<ENV
# written by scripts/emulator.sh; source it in the shell that runs cargo lambda
export PATH="$ROOT/.venv/bin:\$PATH"
export AWS_ENDPOINT_URL=$ENDPOINT AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true
export DPL_STREAM_NAME=dpl DEAD_LETTER_QUEUE_URL=$ENDPOINT/123456789012/twin-events-dlq
ENV

"$ROOT/.venv/bin/moto_server" -H 127.0.0.1 -p "$PORT" &
MOTO_PID=$!
trap 'kill $MOTO_PID 2>/dev/null; wait $MOTO_PID 2>/dev/null; echo "emulator: stopped" >&2' EXIT
trap 'exit 130' INT TERM

AWS_ENDPOINT_URL=$ENDPOINT "$ROOT/.venv/bin/python" - <<'PY'
import os, time, boto3
kw = dict(endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1",
          aws_access_key_id="testing", aws_secret_access_key="testing")
for _ in range(150):
    try:
        boto3.client("sts", **kw).get_caller_identity()
        break
    except Exception:
        time.sleep(0.2)
else:
    raise SystemExit("emulator: moto did not come up")
boto3.client("kinesis", **kw).create_stream(StreamName="dpl", ShardCount=1)
boto3.client("sqs", **kw).create_queue(QueueName="twin-events-dlq")
boto3.client("s3", **kw).create_bucket(Bucket="dpl-data")
PY
echo "emulator: moto on $ENDPOINT with stream dpl, queue twin-events-dlq, bucket dpl-data"
echo "emulator: in another terminal: source target/emulator.env"
wait "$MOTO_PID"
