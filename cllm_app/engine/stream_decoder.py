"""Token ids to text as they come, for every tokenizer (engine/tokenizer.py, engine/bpe.py)."""

import codecs


class StreamDecoder:
    """Turns tokens into text one at a time; a character split across byte tokens is
    held back until it is complete, so a stream never shows half a character."""

    def __init__(self, to_bytes):
        self._to_bytes = to_bytes
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token: int) -> str:
        return self._utf8.decode(self._to_bytes(token))

    def flush(self) -> str:
        return self._utf8.decode(b"", final=True)
