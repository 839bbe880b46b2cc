typedef int gc_placeholder_b64;
