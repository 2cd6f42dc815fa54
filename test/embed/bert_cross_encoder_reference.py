"""Reference scores of a BERT cross-encoder, in PyTorch, following transformers'
BertForSequenceClassification (BertEmbeddings with token types, BertSelfAttention eager with the
extended additive mask, BertPooler tanh(dense(h[:, 0])), classifier on the pooled state) in eval
mode. Reads model.safetensors and config.json of a folder, and a JSON file of padded batches:
{"input_ids": [[...]], "token_type_ids": [[...]], "attention_mask": [[...]]}; prints the logits as JSON.

    python3 bert_cross_encoder_reference.py MODEL_DIR BATCH.json
"""
import json
import math
import struct
import sys

import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = bytearray(data[8 + n + start:8 + n + end])
        out[name] = torch.frombuffer(raw, dtype=DTYPES[info["dtype"]]).reshape(info["shape"]).float()
    return out


def main():
    folder, batch_file = sys.argv[1], sys.argv[2]
    config = json.load(open(f"{folder}/config.json"))
    w = {k[len("bert."):] if k.startswith("bert.") else k: v for k, v in read_safetensors(f"{folder}/model.safetensors").items()}
    batch = json.load(open(batch_file))
    ids = torch.tensor(batch["input_ids"])
    types = torch.tensor(batch["token_type_ids"])
    mask = torch.tensor(batch["attention_mask"])
    B, L = ids.shape
    H, NH, eps = config["hidden_size"], config["num_attention_heads"], config["layer_norm_eps"]
    d = H // NH
    ln = lambda x, p: F.layer_norm(x, (H,), w[f"{p}.weight"], w[f"{p}.bias"], eps)
    lin = lambda x, p: F.linear(x, w[f"{p}.weight"], w[f"{p}.bias"])
    h = F.embedding(ids, w["embeddings.word_embeddings.weight"]) + F.embedding(types, w["embeddings.token_type_embeddings.weight"])
    h = ln(h + F.embedding(torch.arange(L)[None], w["embeddings.position_embeddings.weight"]), "embeddings.LayerNorm")
    ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    heads = lambda x: x.view(B, L, NH, d).permute(0, 2, 1, 3)
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        q, k, v = (heads(lin(h, f"{p}.attention.self.{n}")) for n in ("query", "key", "value"))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d) + ext
        ctx = torch.softmax(scores, dim=-1).matmul(v).permute(0, 2, 1, 3).reshape(B, L, H)
        h = ln(lin(ctx, f"{p}.attention.output.dense") + h, f"{p}.attention.output.LayerNorm")
        h = ln(lin(F.gelu(lin(h, f"{p}.intermediate.dense")), f"{p}.output.dense") + h, f"{p}.output.LayerNorm")
    pooled = torch.tanh(lin(h[:, 0], "pooler.dense"))
    print(json.dumps(lin(pooled, "classifier")[:, 0].tolist()))


with torch.no_grad():
    main()
