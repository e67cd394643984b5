"""How much one file and one ingest may hold. Read at call time, so tests can lower them."""

MAX_FILE_BYTES = 2 * 1024**3  # one file as read from disk; larger text is better split
MAX_INGEST_BYTES = 64 * 1024**3  # one ingest (a pick, a folder, an archive) in all
MAX_WHOLE_BYTES = 256 * 1024**2  # formats parsed whole (HTML, JSON, PDF): their parsers hold it all
MAX_ARCHIVE_MEMBERS = 100_000  # members of one .zip
CHUNK = 8 << 20  # bytes read at a time: big enough for speed, small enough to bound memory
