"""Print the dataflow-buffer ratio SE / TSE (attention and total buffering) for zoo models.

    python benchmarks/buffers_se_vs_tse.py                                 # efficientnet_b0 at 224, tiles 2,4,7
    python benchmarks/buffers_se_vs_tse.py --model efficientnet_b2 --input-size 768 --tiles 7

No timing: the buffer model is deterministic (docs/architecture.md §5). Each variant is exported once.
"""

from __future__ import annotations

import argparse

from seadeploy.profiling.summaries import buffers_for


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="efficientnet_b0")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--tiles", default="2,4,7")
    a = p.parse_args()
    se = buffers_for(model=a.model, attn="se", input_size=a.input_size).summary()
    print(f"{a.model} @ {a.input_size}: SE attention {se['attention_buffer_elements']:,} elements, "
          f"total {se['total_buffer_elements']:,}")
    print(f"{'tile':>5} {'attention':>14} {'total':>14} {'SE/TSE attn':>12} {'SE/TSE total':>13}")
    for tile in [int(t) for t in a.tiles.split(",")]:
        t = buffers_for(model=a.model, attn="tse", attn_kwargs={"tile": tile}, input_size=a.input_size).summary()
        print(f"{tile:>5} {t['attention_buffer_elements']:>14,} {t['total_buffer_elements']:>14,} "
              f"{se['attention_buffer_elements'] / t['attention_buffer_elements']:>12.2f} "
              f"{se['total_buffer_elements'] / t['total_buffer_elements']:>13.2f}")


if __name__ == "__main__":
    main()
