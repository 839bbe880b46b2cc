/* placeholder */ typedef int gc_placeholder_ledger_t;
