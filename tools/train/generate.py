"""Batched greedy decoding with a KV cache for models.Target.

Prompts are grouped by token length (no padding inside a batch); finished
rows are dropped from the batch as they end. Deterministic (argmax, ties to
the lowest id as torch.argmax does)."""

import torch


@torch.no_grad()
def greedy(model, prompts, eos_ids, max_new, batch=64, stop_after=None):
    """prompts: list of token-id lists. Returns list of generated id lists
    (including the eos token when reached). stop_after: optional id after
    which a row also stops (not used by default)."""
    model.eval()
    out = [None] * len(prompts)
    by_len = {}
    for i, p in enumerate(prompts):
        by_len.setdefault(len(p), []).append(i)
    eos = torch.tensor(sorted(set(eos_ids)))
    for L in sorted(by_len):
        idx_all = by_len[L]
        for b0 in range(0, len(idx_all), batch):
            idx = idx_all[b0:b0 + batch]
            toks = torch.tensor([prompts[i] for i in idx])
            cache = model.new_cache()
            logits, _ = model(toks, 0, cache, logits_rows=[-1])
            nxt = logits[:, -1].float().argmax(-1)
            gen = [[] for _ in idx]
            alive = list(range(len(idx)))   # row in batch -> position in idx
            pos = L
            for _ in range(max_new):
                for r, j in enumerate(alive):
                    gen[j].append(int(nxt[r]))
                done = torch.isin(nxt, eos)
                if stop_after is not None:
                    done |= nxt == stop_after
                if pos + 1 >= model.c.ctx:
                    break
                if bool(done.any()):
                    keep = (~done).nonzero().flatten()
                    if keep.numel() == 0:
                        break
                    alive = [alive[int(k)] for k in keep]
                    nxt = nxt[keep]
                    for layer in cache:
                        layer["k"] = layer["k"][keep]
                        layer["v"] = layer["v"][keep]
                logits, _ = model(nxt[:, None], pos, cache)
                nxt = logits[:, -1].float().argmax(-1)
                pos += 1
            for j, i in enumerate(idx):
                out[i] = gen[j]
    return out
