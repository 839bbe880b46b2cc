/* placeholder */ typedef int gc_placeholder_placeholder_t;
