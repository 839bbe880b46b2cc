/* log.h - the programs' one logging call; libraries never log. */
#ifndef GC_LOG_H
#define GC_LOG_H

enum gc_log_level { GC_LOG_DEBUG, GC_LOG_INFO, GC_LOG_WARN, GC_LOG_ERROR };

/* Sets the program name printed on each line and the lowest level printed. */
void gc_log_init(const char *program, enum gc_log_level min_level);
/* Prints "TIME program LEVEL message" to stderr (thread-safe, one write per line). */
void gc_log(enum gc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define gc_debug(...) gc_log(GC_LOG_DEBUG, __VA_ARGS__)
#define gc_info(...)  gc_log(GC_LOG_INFO, __VA_ARGS__)
#define gc_warn(...)  gc_log(GC_LOG_WARN, __VA_ARGS__)
#define gc_error(...) gc_log(GC_LOG_ERROR, __VA_ARGS__)

#endif
