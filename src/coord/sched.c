/* placeholder */ typedef int gc_placeholder_sched_t;
