"""The Server-Sent Events parser (WHATWG "Interpreting an event stream")."""

import unittest

from roundlog_client.sse import SSEParser


def parse(*chunks, last_event_id=None):
    parser = SSEParser(last_event_id)
    events = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events, parser


class Parsing(unittest.TestCase):
    def test_events_with_ids_types_and_json_data(self):
        events, parser = parse(b': keep-alive\n\nid: 41\nevent: RoundCompleted\ndata: {"round": 3}\n\n'
                               b'id: 42\nevent: RunEnded\ndata: {}\n\n')
        self.assertEqual([(x.id, x.type, x.data) for x in events],
                         [("41", "RoundCompleted", {"round": 3}), ("42", "RunEnded", {})])
        self.assertEqual(parser.last_event_id, "42")

    def test_line_ends_crlf_cr_and_lf_split_anywhere(self):
        stream = b'id: 1\r\ndata: {"a":\r\ndata: 1}\r\rid:2\rdata:x\n\n'
        whole, _ = parse(stream)
        one_byte_at_a_time, _ = parse(*[stream[i:i + 1] for i in range(len(stream))])
        for events in (whole, one_byte_at_a_time):
            self.assertEqual([(x.id, x.raw, x.data) for x in events],
                             [("1", '{"a":\n1}', {"a": 1}), ("2", "x", "x")])

    def test_an_unfinished_event_is_not_dispatched(self):
        events, parser = parse(b"id: 5\ndata: {}\n\nid: 6\ndata: {")
        self.assertEqual([x.id for x in events], ["5"])
        self.assertEqual(parser.last_event_id, "6")  # the id field is already processed
        self.assertEqual([x.id for x in parser.feed(b"}\n\n")], ["6"])

    def test_no_data_no_event_and_the_id_persists(self):
        events, _ = parse(b"id: 7\nevent: X\n\ndata: a\n\n", last_event_id="3")
        self.assertEqual([(x.id, x.type, x.raw) for x in events], [("7", "message", "a")])

    def test_one_space_is_dropped_unknown_fields_and_nul_ids_ignored(self):
        events, _ = parse(b"\xef\xbb\xbfdata:  two spaces\nretry: 10\nfoo: bar\nid: a\x00b\n\n", last_event_id="9")
        self.assertEqual([(x.id, x.raw) for x in events], [("9", " two spaces")])

    def test_a_field_without_colon_is_a_field_with_empty_value(self):
        events, _ = parse(b"data\ndata\n\n")
        self.assertEqual([x.raw for x in events], ["\n"])


if __name__ == "__main__":
    unittest.main()
