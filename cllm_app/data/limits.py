"""How much one file and one ingest may hold. Read at call time, so tests can lower them."""

MAX_FILE_BYTES = 2 * 1024**3  # one file as read from disk; larger text is better split
MAX_INGEST_BYTES = 64 * 1024**3  # one ingest (a pick, a folder, an archive) in all
MAX_WHOLE_BYTES = 256 * 1024**2  # formats parsed whole (HTML, JSON, PDF): their parsers hold it all
MAX_ARCHIVE_MEMBERS = 100_000  # members of one .zip
# What one .zip may expand to, in all: beyond this, unpacking it and adding the folder is the
# honest way (each file then meets its own limits), and a zip bomb meets a wall.
MAX_ARCHIVE_BYTES = 8 * 1024**3
# How many times its compressed size one member may expand to. Deflate gives natural text
# about 3:1 and the most repetitive real data (logs, CSV) some 20-50:1; one repeated byte gives
# about 1,000:1, deflate's ceiling. Members under ARCHIVE_RATIO_FROM bytes are exempt: a small
# file of blanks is harmless.
MAX_ARCHIVE_RATIO = 100
ARCHIVE_RATIO_FROM = 1 << 20
CHUNK = 8 << 20  # bytes read at a time: big enough for speed, small enough to bound memory
