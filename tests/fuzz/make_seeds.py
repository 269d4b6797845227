#!/usr/bin/env python3
"""Seed corpora for the fuzz targets: small slices of the real files in the models dir.

make_seeds.py MODELS_DIR OUT_DIR writes OUT_DIR/<target>/<seed> for each target: GGUF files
cut down to a few metadata keys, 16 tokens and the smallest tensors; safetensors with the
norm tensors only; the SentencePiece model and config.json files as they are; wire messages
in the decoder's format."""
import json, os, struct, sys

models, out = sys.argv[1], sys.argv[2]

def put(target, name, data):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    with open(os.path.join(out, target, name), "wb") as f:
        f.write(data)

# --- GGUF -----------------------------------------------------------------------------------
SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<B", 10: "<Q", 11: "<q", 12: "<d"}
BLOCK = {0: (1, 4), 1: (1, 2), 2: (32, 18), 8: (32, 34), 30: (1, 2)}

class Reader:
    def __init__(self, b): self.b, self.p = b, 0
    def take(self, fmt):
        v = struct.unpack_from(fmt, self.b, self.p); self.p += struct.calcsize(fmt); return v[0]
    def string(self):
        n = self.take("<Q"); s = self.b[self.p:self.p + n]; self.p += n; return s
    def value(self, t):
        if t == 8: return self.string()
        if t == 9:
            et, n = self.take("<I"), self.take("<Q")
            return (et, [self.value(et) for _ in range(n)])
        return self.take(SCALAR[t])

def enc_value(t, v):
    if t == 8: return struct.pack("<Q", len(v)) + v
    if t == 9:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(enc_value(et, x) for x in items)
    return struct.pack(SCALAR[t], v)

def mini_gguf(path, max_tensor_bytes, n_tokens=16):
    r = Reader(open(path, "rb").read())
    assert r.take("<I") == 0x46554747
    version, n_t, n_kv = r.take("<I"), r.take("<Q"), r.take("<Q")
    kv = []
    for _ in range(n_kv):
        k = r.string(); t = r.take("<I"); v = r.value(t)
        if t == 9: v = (v[0], v[1][:n_tokens])
        if k.endswith(b"vocab_size"): v = n_tokens
        kv.append((k, t, v))
    tensors = []
    for _ in range(n_t):
        name = r.string(); nd = r.take("<I"); ne = [r.take("<Q") for _ in range(nd)]
        typ = r.take("<I"); off = r.take("<Q"); tensors.append((name, ne, typ, off))
    align = 32
    data_start = (r.p + align - 1) // align * align
    keep = []
    for name, ne, typ, off in tensors:
        if typ not in BLOCK: continue
        n = 1
        for d in ne: n *= d
        nbytes = n // BLOCK[typ][0] * BLOCK[typ][1]
        if nbytes <= max_tensor_bytes: keep.append((name, ne, typ, r.b[data_start + off:data_start + off + nbytes]))
    head = struct.pack("<IIQQ", 0x46554747, version, len(keep), len(kv))
    head += b"".join(struct.pack("<Q", len(k)) + k + struct.pack("<I", t) + enc_value(t, v) for k, t, v in kv)
    off, body = 0, b""
    for name, ne, typ, data in keep:
        head += struct.pack("<Q", len(name)) + name + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        head += struct.pack("<IQ", typ, off)
        pad = (-len(data)) % align
        body += data + b"\0" * pad; off += len(data) + pad
    head += b"\0" * ((-len(head)) % align)
    return head + body

put("gguf", "stories260K-q4_0", mini_gguf(f"{models}/stories260K/stories260K-q4_0.gguf", 400))
put("gguf", "stories260K-f32", mini_gguf(f"{models}/stories260K/stories260K.gguf", 300))
put("gguf", "gpt2-tiny", mini_gguf(f"{models}/gpt2-tiny/gpt2-tiny.gguf", 300))

# --- safetensors ----------------------------------------------------------------------------
def mini_safetensors(path, max_bytes):
    b = open(path, "rb").read(); n = struct.unpack_from("<Q", b)[0]; h = json.loads(b[8:8 + n]); data = b[8 + n:]
    hdr, blob = {}, b""
    for k, v in h.items():
        if k == "__metadata__": hdr[k] = v; continue
        s, e = v["data_offsets"]
        if e - s <= max_bytes:
            hdr[k] = {"dtype": v["dtype"], "shape": v["shape"], "data_offsets": [len(blob), len(blob) + e - s]}
            blob += data[s:e]
    j = json.dumps(hdr).encode()
    return struct.pack("<Q", len(j)) + j + blob

put("safetensors", "stories260K", mini_safetensors(f"{models}/stories260K/hf/model.safetensors", 256))

# --- tokenizer.model, config.json -----------------------------------------------------------
put("tokenizer_model", "stories260K", open(f"{models}/stories260K/hf/tokenizer.model", "rb").read())
for m in ["stories260K", "gpt2-tiny", "llama3-tiny"]:
    p = f"{models}/{m}/hf/config.json"
    if os.path.exists(p): put("hf_config", m, open(p, "rb").read())

# --- wire: magic, version, session, pos, dtype, shape, data, sampling, recent, step, logits ----
def wire(dtype, shape, data, recent):
    m = struct.pack("<IIQq", 0x57505254, 1, 7, 3) + struct.pack("<B", dtype)
    m += struct.pack("<Q", len(shape)) + b"".join(struct.pack("<q", d) for d in shape)
    m += struct.pack("<Q", len(data)) + data
    m += struct.pack("<f", 0.8) + struct.pack("<i", 40) + struct.pack("<f", 0.95) + struct.pack("<f", 1.0)
    m += struct.pack("<i", 64) + struct.pack("<Q", 42)
    m += struct.pack("<Q", len(recent)) + b"".join(struct.pack("<i", t) for t in recent)
    m += struct.pack("<QB", 5, 0)
    return m

put("wire", "tokens", wire(3, [3], struct.pack("<3i", 1, 2, 3), [1, 2, 3]))
put("wire", "hidden-f32", wire(0, [2, 4], struct.pack("<8f", *range(8)), [1]))
put("wire", "hidden-f16", wire(1, [1, 4], b"\0\x3c" * 4, []))
