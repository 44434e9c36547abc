#!/usr/bin/env python3
# Writes tests/fixtures/tiny.core, the smallest core file test_import reads (it is committed;
# run this only to change it).
import struct
# A minimal ELF64 little-endian x86-64 core: a PT_NOTE (NT_PRSTATUS, NT_PRPSINFO, NT_FILE) and
# three PT_LOADs: a file's r-x text, its r-- data (same file, next pages), anonymous rw-.
def note(name, ntype, desc):
    n = name + b'\0'
    pad = lambda b: b + b'\0' * ((4 - len(b) % 4) % 4)
    return struct.pack('<III', len(n), len(desc), ntype) + pad(n) + pad(desc)
prstatus = b'\0' * 32 + struct.pack('<I', 4242) + b'\0' * 300
prpsinfo = bytearray(136)
struct.pack_into('<I', prpsinfo, 24, 4242)
prpsinfo[40:40+6] = b'server'
prpsinfo[56:56+24] = b'/srv/bin/server --port 8'
page = 4096
# One NT_FILE entry may cover several segments: the server's text and data are one here.
files = [(0x400000, 0x403000, 0, b'/srv/bin/server'),
         (0x7f0000000000, 0x7f0000001000, 5, b'/srv/lib/gone.so (deleted)')]
nt_file = struct.pack('<QQ', len(files), page)
for s, e, o, _ in files:
    nt_file += struct.pack('<QQQ', s, e, o)
for *_, n in files:
    nt_file += n + b'\0'
notes = note(b'CORE', 1, prstatus) + note(b'CORE', 3, bytes(prpsinfo)) + note(b'CORE', 0x46494c45, nt_file)
loads = [(0x400000, 0x2000, 5), (0x402000, 0x1000, 4), (0x600000, 0x3000, 6), (0x7f0000000000, 0x1000, 4)]
phnum = 1 + len(loads)
off = 64 + 56 * phnum
eh = b'\x7fELF' + bytes([2, 1, 1, 0]) + b'\0' * 8
eh += struct.pack('<HHIQQQIHHHHHH', 4, 62, 1, 0, 64, 0, 0, 64, 56, phnum, 64, 0, 0)
ph = struct.pack('<IIQQQQQQ', 4, 4, off, 0, 0, len(notes), 0, 1)
data_off = off + len(notes)
for v, sz, fl in loads:
    ph += struct.pack('<IIQQQQQQ', 1, fl, data_off, v, 0, 0, sz, page)
import os
open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "tiny.core"), "wb").write(eh + ph + notes)
