#!/usr/bin/env python3
"""Write the committed seed corpus (fuzz/corpus/*/seed-*). Deterministic: rerunning it
rewrites the same files. The formats are the ones the targets parse (see src/*.rs)."""
import os, random, struct, zlib

HERE = os.path.dirname(os.path.abspath(__file__))

def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(bytes(data))

# segment_header: the fixture's header as the library encodes it, and damaged copies.
def segment_header(regions, length, uuid=b"\x5e" * 16):
    buf = bytearray(4096)
    buf[0:8] = b"RVMSEGHD"
    struct.pack_into("<III", buf, 8, 1, 4096, 0)
    struct.pack_into("<I", buf, 20, len(regions))
    buf[24:40] = uuid
    struct.pack_into("<QQ", buf, 40, length, 0)
    for i, (off, ln, addr) in enumerate(regions):
        struct.pack_into("<QQQ", buf, 64 + 32 * i, off, ln, addr)
    struct.pack_into("<I", buf, 16, zlib.crc32(bytes(buf)) & 0xffffffff)
    return buf

fixture = segment_header([(8192, 8192, 0x100000000000), (20480, 4096, 0x100000002000)], 28672)
write("segment_header", "fixture", fixture)
write("segment_header", "classic-1g", segment_header(
    [(4096, 0x3fefd000, 0x70000000), (4096 + 0x3fefd000, 0x100000, 0x70000000 + 0x3fefd000)], 1 << 30))
bad = bytearray(fixture); bad[70] ^= 1
write("segment_header", "bad-crc", bad)
write("segment_header", "short", fixture[:100])
write("segment_header", "address-zero", segment_header([(8192, 8192, 0), (20480, 4096, 0x100000002000)], 28672))
write("segment_header", "address-kernel", segment_header([(8192, 8192, 0xffff800000000000), (20480, 4096, 0x100000002000)], 28672))
write("segment_header", "address-past-user-end", segment_header([(8192, 8192, 0x7ffffffff000), (20480, 4096, 0x100000002000)], 28672))
write("segment_header", "overlap", segment_header([(4096, 8192, 0x10000), (8192, 8192, 0x10000)], 1 << 20))

# log_recovery: mode byte, then patches (even) or a synthesized log (odd).
write("log_recovery", "base", [0])
write("log_recovery", "base-prefix", [2])
# Patch ops: 0/1 overwrite (u32 offset, u8 len, bytes), 2 u64 field (u16 index, u64), 3 resize.
p = [0, 0] + list(struct.pack("<I", 65536 + 600)) + [4, 1, 2, 3, 4]
write("log_recovery", "patched-record", p)
p = [0, 2] + list(struct.pack("<H", 9)) + list(struct.pack("<Q", 1 << 40))
write("log_recovery", "patched-status-field", p)
p = [0, 3] + list(struct.pack("<I", 100000))
write("log_recovery", "short-file", p)
rng = random.Random(6)
for n in range(4):
    # flags, generation, head (u16), head_lsn, generation_start delta, record count, records...
    body = [rng.randrange(16), rng.randrange(3), *struct.pack("<H", rng.randrange(8192)),
            rng.randrange(255), 0, 6 + n]
    for r in range(6 + n):
        kind = rng.choice([1, 2, 3, 0x41, 0])
        body.append(kind)
        if kind % 8 == 0:
            body.append(rng.randrange(64))
        else:
            count = 1 + rng.randrange(3)
            body.append(count)
            for _ in range(count):
                sel = rng.randrange(4)
                body.append(sel)
                if sel in (0, 1):
                    body += list(struct.pack("<H", rng.randrange(4096))) + [rng.randrange(256)]
                elif sel == 2:
                    body += list(struct.pack("<Q", rng.randrange(1 << 20))) + list(struct.pack("<H", rng.randrange(512)))
                else:
                    body += list(struct.pack("<H", rng.randrange(1 << 16))) + [rng.randrange(256)]
    body += [rng.randrange(256) for _ in range(8)]
    write("log_recovery", "synth-%d" % n, [1 | (n & 2)] + body)

# A synthesized log whose table names a plain file that does not exist (flags 0x10: a
# version-2 status); recovery must refuse the records that name it.
write("log_recovery", "synth-plain-file", [1, 0x10 | 1, 1, 0, 0, 1, 0, 3] + [1, 1] + list(struct.pack("<QH", 4096, 64)) + [7] * 64)


# tx_model: tear, crash point (u16), controller seed (u64), then operations.
def tx_seed(name, tear, crash, ops):
    write("tx_model", name, [tear] + list(struct.pack("<H", crash)) + list(struct.pack("<Q", 99)) + ops)

def write_op(region, off, ln, big=False):
    return [2 | (0x80 if big else 0), region] + list(struct.pack("<H", off)) + [ln]

ops = [0] + write_op(0, 100, 20) + [3] + [1] + write_op(1, 7, 60) + [4] + [0] + write_op(0, 100, 5) + [5] + [6]
tx_seed("basic", 2, 1000, ops)
tx_seed("crash-early", 0, 3, ops)
rng = random.Random(9)
for n in range(4):
    ops = []
    for _ in range(40):
        ops += [rng.choice([0, 1])]
        for _ in range(rng.randrange(1, 4)):
            ops += write_op(rng.randrange(2), rng.randrange(8192), rng.randrange(64), rng.random() < 0.3)
        ops += [rng.choice([3, 4, 4, 4, 5])]
        if rng.random() < 0.1:
            ops += [rng.choice([6, 7])]
    tx_seed("mixed-%d" % n, n % 3, rng.randrange(1, 400), ops)

# heap_check: mode byte, then patches on the real heap (even) or raw heap bytes (odd).
write("heap_check", "base", [0])
write("heap_check", "patched-tag", [0, 2] + list(struct.pack("<H", 40)) + list(struct.pack("<Q", 0xdeadbeef)))
write("heap_check", "patched-bytes", [0, 0] + list(struct.pack("<I", 5000)) + [8] + [0xff] * 8)
write("heap_check", "short", [0, 3] + list(struct.pack("<I", 700)))
write("heap_check", "other-address", [2] + list(struct.pack("<Q", 0x7fff_ffff_f000)))
write("heap_check", "raw", [1] + [0] * 64 + [0xff] * 64)

# units: text (its first 10 bytes also give the round-trip value, shift and unit). The first
# thirteen are the former rdsinit_number seeds; the rest are issue 12's sizes.
for i, t in enumerate(["4096", "0x1000", "010000", "30M", "1G", "0x40000000", " 64 ", "18446744073709551615", "16g", "0x", "08", "-1", "1T",
                       "1GB", "30MB", "2048S", "-5", "30MiB", "0x10KiB", "0x1B", "16P", "1_048_576", "x2a", "3Q", "1.5G", "17179869184G", "MiB", "0x10KBB"]):
    write("units", "n%02d" % i, t.encode())

# heap_walk_file: region file offset (u32), bytes past the end of the file (u32), then
# heap_check's patches on the real heap.
write("heap_walk_file", "base", struct.pack("<II", 4096, 0))
write("heap_walk_file", "unaligned-offset", struct.pack("<II", 4099, 0))
write("heap_walk_file", "past-the-file", struct.pack("<II", 8192, 100000))
write("heap_walk_file", "patched-tag", struct.pack("<II", 4096, 0) + bytes([2]) + struct.pack("<H", 40) + struct.pack("<Q", 0xdeadbeef))
write("heap_walk_file", "short", struct.pack("<II", 0, 0) + bytes([3]) + struct.pack("<I", 700))
write("heap_walk_file", "cut-and-beyond", struct.pack("<II", 65536, 70000) + bytes([3]) + struct.pack("<I", 30000))

# rvmutl_parse: command lines and formats, one per line.
lines = [
    "open_log /srv/rvm/log", "status", "show head", "show all", "peek 0x50000000/4xl",
    "peek data 0x1000/16c", "poke 0x50000000/l 12 -3 0x7f", "set head 0x10000",
    "find 0x50001000", "recover", "sizeof all", "head", "next 10", "prev",
    "4xl", "16c", "2uw", "0x1000,0x20", "30M", "8S", "2P", "3,4", "x10", "quit",
    "open_log log > out.txt", "init_log /tmp/l 1M", "write_status",
    # issue 12 item 9: the classic commands and keywords added
    "find_hole", "replay no_update head 3 tail 9 log", "recover no_update file log",
    "show timestamp uname", "sizeof rec_hdr_t page_size all_sizes", "p 0/2h",
    "p 0/i", "p log 8/3L", "p 0/w", "p 0/4*b", "set prev_head = 3", "set log_start = 0",
    "set 100 = 3", "h", "he # a comment", "status#not a comment", "tail   # trailing",
    "poke 8 = \"#not a comment\" # but this is", "help peek", "quit",
]
for i in range(0, len(lines), 3):
    write("rvmutl_parse", "l%02d" % i, "\n".join(lines[i:i + 3]).encode())

# merge: far flag, range count, then (segment, offset u16, length, moved, value) per range.
rng = random.Random(9)
for i in range(8):
    n = [3, 12, 40, 120, 199, 60, 25, 8][i]
    data = bytearray([i % 2, n])
    for k in range(n):
        hot = rng.random() < 0.4
        offset = (i * 37) % 64 if hot else rng.randrange(512)
        data += bytes([rng.randrange(4)]) + struct.pack("<H", offset)
        data += bytes([8 if hot else rng.randrange(49), rng.randrange(256), rng.randrange(256)])
    write("merge", "m%02d" % i, data)
