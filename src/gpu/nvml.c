/* placeholder */ typedef int gc_placeholder_nvml_t;
