typedef int gc_placeholder_form;
