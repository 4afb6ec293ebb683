"""Hash matching of known-bad media and text (issue 4), in the spirit of Meta's HMA.

Modules, in data-flow order:

- `hashers`: PDQ (images, sampled video frames), MD5/SHA-256, 64-bit text SimHash; hex outside,
  packed bytes inside.
- `banks`: Bank/BankEntry dataclasses, settings and the `BankStore` protocol; `sqlite` and `postgres`:
  its SQLite and PostgreSQL implementations, `open`: the one a path or URL names; `csvio`: CSV import
  (all or nothing, every bad line reported) and export.
- `index`: exact Hamming-radius search (brute force and multi-index hashing).
- `service`: `HashMatcher`, what the rules engine calls; `media`: bytes from event values.
- `nsfw`: NSFW image score from an ONNX model shipped in a wheel.
- `cli`: `hash`, `bank …`, `match` click commands.

Nothing is imported here, so importing one module does not load the others' dependencies.
"""
