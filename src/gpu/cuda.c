/* placeholder */ typedef int gc_placeholder_cuda_t;
