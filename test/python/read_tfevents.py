#!/usr/bin/env python3
"""Reads TensorBoard event files under a log directory, independently of roundlog.

Standard library only: the TFRecord framing (every length and data CRC-32C checked, masked as
TensorFlow masks it) and a minimal protobuf wire-format decoder for Event, Summary and
Summary.Value (wall_time=1 double, step=2 int64, file_version=3 string, summary=5; value=1;
tag=1, simple_value=2 float). Unknown fields are skipped by wire type.

Prints JSON: {"runs": {<run dir relative to logdir>: {"files": [...], "file_version": ...,
"tags": {<tag>: [[step, value, wall_time], ...]}}}, "problems": [...]}. A run is a folder holding
files whose name contains "tfevents", as TensorBoard finds them; files are read in name order.
A record cut short at the end of a file stops that file (as TensorBoard does) and is reported.
"""
import json
import os
import struct
import sys


def crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


TABLE = crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked(data):
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def records(blob, name, problems):
    offset = 0
    while offset < len(blob):
        if len(blob) - offset < 12:
            problems.append(f"{name}: torn record header at byte {offset}")
            return
        header = blob[offset : offset + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", blob[offset + 8 : offset + 12])
        if length_crc != masked(header):
            raise ValueError(f"{name}: length CRC mismatch at byte {offset}")
        if len(blob) - offset < 16 + length:
            problems.append(f"{name}: torn record at byte {offset}")
            return
        data = blob[offset + 12 : offset + 12 + length]
        (data_crc,) = struct.unpack("<I", blob[offset + 12 + length : offset + 16 + length])
        if data_crc != masked(data):
            raise ValueError(f"{name}: data CRC mismatch at byte {offset}")
        yield data
        offset += 16 + length


def varint(buf, i):
    result = 0
    shift = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def fields(buf):
    """Yields (field number, wire type, value) of one message; value is int, bytes or raw fixed bytes."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(buf, i)
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 2:
            length, i = varint(buf, i)
            value, i = buf[i : i + length], i + length
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def int64(v):
    return v - (1 << 64) if v >= (1 << 63) else v


def decode_event(buf):
    event = {"wall_time": 0.0, "step": 0, "file_version": None, "values": None}
    for number, wire, value in fields(buf):
        if number == 1 and wire == 1:
            event["wall_time"] = struct.unpack("<d", value)[0]
        elif number == 2 and wire == 0:
            event["step"] = int64(value)
        elif number == 3 and wire == 2:
            event["file_version"] = value.decode("utf-8")
        elif number == 5 and wire == 2:
            values = []
            for n, w, v in fields(value):
                if n != 1 or w != 2:
                    continue
                tag, simple = None, None
                for vn, vw, vv in fields(v):
                    if vn == 1 and vw == 2:
                        tag = vv.decode("utf-8")
                    elif vn == 2 and vw == 5:
                        simple = struct.unpack("<f", vv)[0]
                values.append((tag, simple))
            event["values"] = values
    return event


def main():
    logdir = sys.argv[1]
    runs = {}
    problems = []
    for dirpath, dirnames, filenames in os.walk(logdir):
        dirnames.sort()
        names = sorted(n for n in filenames if "tfevents" in n)
        if not names:
            continue
        run = os.path.relpath(dirpath, logdir).replace(os.sep, "/")
        entry = runs.setdefault(run, {"files": [], "file_version": None, "tags": {}})
        for name in names:
            entry["files"].append(name)
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                blob = f.read()
            for index, data in enumerate(records(blob, path, problems)):
                event = decode_event(data)
                if index == 0:
                    if event["file_version"] is None:
                        raise ValueError(f"{path}: the first record is not a file_version event")
                    entry["file_version"] = event["file_version"]
                    continue
                for tag, value in event["values"] or []:
                    entry["tags"].setdefault(tag, []).append([event["step"], value, event["wall_time"]])
    json.dump({"runs": runs, "problems": problems}, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
