"""Latency tables: every prunable layer's operator timed on the target's runtime at the widths
the allocator may choose (`table`), the operators of a torch model (`layers`)."""
