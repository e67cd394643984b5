"""JSON for a server-sent event's `data:` line.

The SSE format ends a line only at CR or LF, and json.dumps escapes both, but many clients
split lines with a str.splitlines() that also breaks at U+0085, U+2028 and U+2029 (requests'
iter_lines(decode_unicode=True) does). A model may emit any of them, so they travel escaped:
the JSON means the same and every client sees one line.
"""

import json

_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def json_data(obj) -> str:
    return json.dumps(obj, ensure_ascii=False).translate(_LINE_BREAKS)
