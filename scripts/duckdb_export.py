#!/usr/bin/env python3
"""DuckDB baseline of the hourly export (scripts/export-bench.sh).

Reads every staged `.ndjson.gz` object of one hour (the layout of
docs/export.md: STAGING/{hour}/{oem}/{type}/*.ndjson.gz) and writes, per
(oem, type), the same headerless CSV as dpl::export: same columns
(docs/csv-format.md), rows ordered by (event time, stream order, event
id), each event id once. Prints one line: rows, CSV bytes, wall time, peak RSS of this process.

Usage: duckdb_export.py STAGING_HOUR_DIR OUT_DIR THREADS
"""
import glob
import os
import resource
import sys
import time

import duckdb

DATE = "'%a %b %d %H:%M:%S UTC %Y'"
TEXT_TYPES = "('string', 'message', 'file')"


def date(expr):
    # Timestamps are UTC (`Z`, `+0000`); DuckDB parses both as TIMESTAMPTZ.
    return f"strftime(({expr})::TIMESTAMPTZ AT TIME ZONE 'UTC', {DATE})"


def text(expr):
    # NULL and '' are both an empty cell; DuckDB's writer quotes '' (it
    # equals the null string), so write '' as NULL.
    return f"NULLIF({expr}, '')"


def b64(expr):
    return f"to_base64(encode({expr}))"


def value(expr, base_type):
    # `value` is a JSON string or number; JSON text of a number as is.
    v = f"(CASE WHEN json_type({expr}) = 'VARCHAR' THEN {expr} ->> '$' ELSE {expr}::VARCHAR END)"
    return f"(CASE WHEN {base_type} IN {TEXT_TYPES} THEN {b64(v)} ELSE {text(v)} END)"


def metadata(expr):
    return f"(CASE WHEN {expr}::VARCHAR = '{{}}' THEN 'e30=' ELSE {b64(expr + '::VARCHAR')} END)"


DEVICE = "oem_id VARCHAR, oem_model VARCHAR, dsn VARCHAR"
PROPERTY = DEVICE + ", property_name VARCHAR, display_name VARCHAR, base_type VARCHAR"
M = "e.dpl_event.metadata"
DEVICE_COLS = [text(f"{M}.oem_id"), text(f"{M}.oem_model"), text(f"{M}.dsn")]

# export name -> (struct type of dpl_event, event time expr, CSV cells)
TYPES = {
    "activation": (
        f"STRUCT(metadata STRUCT({DEVICE}), activation STRUCT(id VARCHAR, device_type VARCHAR, "
        "status VARCHAR, event_time VARCHAR))",
        "e.dpl_event.activation.event_time",
        DEVICE_COLS + [text("e.dpl_event.activation.id"), text("e.dpl_event.activation.device_type"),
                       text("e.dpl_event.activation.status"), date("e.dpl_event.activation.event_time")],
    ),
    "connection": (
        f"STRUCT(metadata STRUCT({DEVICE}), timestamp VARCHAR, connection STRUCT(event_time VARCHAR, "
        "user_uuid VARCHAR, status VARCHAR))",
        "e.dpl_event.timestamp",
        DEVICE_COLS + [date("e.dpl_event.connection.event_time"), text("e.dpl_event.connection.user_uuid"),
                       text("e.dpl_event.connection.status")],
    ),
    "datapoint": (
        f"STRUCT(metadata STRUCT({PROPERTY}), timestamp VARCHAR, datapoint STRUCT(id VARCHAR, "
        "updated_at VARCHAR, created_at VARCHAR, echo BOOLEAN, closed BOOLEAN, value JSON, "
        "metadata JSON, user_uuid VARCHAR, discarded BOOLEAN, scope VARCHAR, direction VARCHAR))",
        "e.dpl_event.timestamp",
        DEVICE_COLS + [text(f"{M}.property_name"), b64(f"{M}.display_name"), text(f"{M}.base_type"),
                       text("e.dpl_event.datapoint.id"), date("e.dpl_event.datapoint.updated_at"),
                       date("e.dpl_event.datapoint.created_at"), text("e.dpl_event.datapoint.user_uuid"),
                       "e.dpl_event.datapoint.echo", "e.dpl_event.datapoint.closed",
                       "e.dpl_event.datapoint.discarded", text("e.dpl_event.datapoint.scope"),
                       value("e.dpl_event.datapoint.value", f"{M}.base_type"),
                       metadata("e.dpl_event.datapoint.metadata"), text("e.dpl_event.datapoint.direction")],
    ),
    "datapointack": (
        f"STRUCT(metadata STRUCT({PROPERTY}), timestamp VARCHAR, datapointack STRUCT(id VARCHAR, "
        "created_at_from_device VARCHAR, updated_at VARCHAR, created_at VARCHAR, user_uuid VARCHAR, "
        "echo BOOLEAN, closed BOOLEAN, value JSON, ack_message BIGINT, ack_status BIGINT, "
        "ack_id VARCHAR, acked_at VARCHAR, metadata JSON))",
        "e.dpl_event.timestamp",
        DEVICE_COLS + [text(f"{M}.property_name"), b64(f"{M}.display_name"), text(f"{M}.base_type"),
                       text("e.dpl_event.datapointack.id"), date("e.dpl_event.datapointack.created_at"),
                       date("e.dpl_event.datapointack.updated_at"),
                       date("e.dpl_event.datapointack.created_at_from_device"),
                       text("e.dpl_event.datapointack.user_uuid"), "e.dpl_event.datapointack.echo",
                       "e.dpl_event.datapointack.closed",
                       value("e.dpl_event.datapointack.value", f"{M}.base_type"),
                       metadata("e.dpl_event.datapointack.metadata"), text("e.dpl_event.datapointack.ack_id"),
                       "e.dpl_event.datapointack.ack_status", "e.dpl_event.datapointack.ack_message",
                       date("e.dpl_event.datapointack.acked_at")],
    ),
    "location": (
        f"STRUCT(metadata STRUCT({DEVICE}), timestamp VARCHAR, location_event STRUCT(user_uuid VARCHAR, "
        "ip VARCHAR, lat VARCHAR, long VARCHAR, provider VARCHAR, created_at VARCHAR))",
        "e.dpl_event.timestamp",
        DEVICE_COLS + [text("e.dpl_event.location_event.ip"), text("e.dpl_event.location_event.lat"),
                       text("e.dpl_event.location_event.long"), text("e.dpl_event.location_event.provider"),
                       text("e.dpl_event.location_event.user_uuid"),
                       date("e.dpl_event.location_event.created_at")],
    ),
    "registration": (
        f"STRUCT(metadata STRUCT({DEVICE}), timestamp VARCHAR, registration_event STRUCT("
        "user_uuid VARCHAR, registered BOOLEAN, registration_type VARCHAR, registered_at VARCHAR, "
        "unregistered_at VARCHAR))",
        "e.dpl_event.timestamp",
        DEVICE_COLS + [text("e.dpl_event.registration_event.user_uuid"),
                       "e.dpl_event.registration_event.registered",
                       text("e.dpl_event.registration_event.registration_type"),
                       date("e.dpl_event.registration_event.unregistered_at"),
                       date("e.dpl_event.registration_event.registered_at")],
    ),
}


def export(con, files, kind, out):
    struct, event_time, cells = TYPES[kind]
    listing = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    select = ",\n  ".join(f"{c} AS c{i}" for i, c in enumerate(cells))
    # Same semantics as dpl::export: order by (event time to the
    # millisecond, stream order, event id), one row per event id. The
    # stream order's sequence number (up to 40 digits, more than HUGEINT
    # holds) sorts as a number by its length, then its digits; records
    # without a stream order come first, as Rust's None < Some.
    sql = f"""
COPY (
  SELECT {select}
  FROM read_ndjson({listing}, compression = 'gzip', format = 'newline_delimited',
                   columns = {{'dpl_event': '{struct}', 'event_id': 'VARCHAR',
                              'stream_order': 'STRUCT(sequence_number VARCHAR, index UTINYINT)'}}) AS e
  QUALIFY row_number() OVER (PARTITION BY e.event_id) = 1
  ORDER BY epoch_ms(({event_time})::TIMESTAMPTZ),
           length(e.stream_order.sequence_number) NULLS FIRST,
           e.stream_order.sequence_number NULLS FIRST,
           e.stream_order.index NULLS FIRST,
           e.event_id
) TO '{out}' (FORMAT CSV, HEADER false, DELIMITER ',', QUOTE '"', ESCAPE '"', NULLSTR '')
"""
    return con.execute(sql).fetchone()[0]


def cpu_seconds():
    # User and system CPU of this process, all threads (DuckDB's included).
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main():
    hour_dir, out_dir, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = true")
    started = time.perf_counter()
    cpu_started = cpu_seconds()
    rows = 0
    size = 0
    for oem in sorted(os.listdir(hour_dir)):
        for kind in sorted(os.listdir(os.path.join(hour_dir, oem))):
            files = sorted(glob.glob(os.path.join(hour_dir, oem, kind, "*.ndjson.gz")))
            if not files:
                continue
            target = os.path.join(out_dir, oem, kind)
            os.makedirs(target, exist_ok=True)
            out = os.path.join(target, kind + ".csv")
            rows += export(con, files, kind, out)
            size += os.path.getsize(out)
    seconds = time.perf_counter() - started
    cpu = cpu_seconds() - cpu_started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"duckdb {duckdb.__version__} threads={threads}: {rows} rows, {size / 1e6:.1f} MB CSV "
          f"in {seconds:.2f} s ({cpu:.2f} CPU s, {rows / cpu:.0f} rows per CPU s): {rows / seconds:.0f} rows/s, {size / 1e6 / seconds:.1f} MB/s, "
          f"peak RSS {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
