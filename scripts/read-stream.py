#!/usr/bin/env python3
"""Print every record of a Kinesis stream on the local emulator, decoded.

    .venv/bin/python scripts/read-stream.py [STREAM]     (default: dpl)

What the vendor's tech note does by hand (get-shard-iterator TRIM_HORIZON,
get-records, base64-decode Data), for every shard. Needs AWS_ENDPOINT_URL
(source target/emulator.env).
"""
import os
import sys

import boto3

stream = sys.argv[1] if len(sys.argv) > 1 else "dpl"
kinesis = boto3.client("kinesis", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    while iterator:
        page = kinesis.get_records(ShardIterator=iterator, Limit=1000)
        for record in page["Records"]:
            print(record["PartitionKey"], record["Data"].decode())
        iterator = page.get("NextShardIterator") if page["Records"] else None
