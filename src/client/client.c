/* placeholder */ typedef int gc_placeholder_client_t;
