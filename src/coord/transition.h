/*
 * transition.h - every change of a resident that a step's outcome or a process's
 * fate makes, as a function of the resident, the facts and the time.
 *
 * Pure: no I/O, no clock. The engine learns the facts (a job's answer, NVML, a
 * pidfd, /proc) and records the change with one of these; the scheduler's own
 * changes (a lease granted, a resident marked for a step) are in sched.c, a lease's
 * end in ledger.c. tests/unit/test_transition.c walks each of them.
 */
#ifndef GC_TRANSITION_H
#define GC_TRANSITION_H

#include <stdbool.h>
#include <stdint.h>

#include "coord/ledger.h"

/* Its process exited while no step ran: a restartable resident (its start command
 * brings it back) is unloaded all the way, any other is gone. */
void gc_resident_exited(struct gc_resident *r, pid_t pid, int64_t now_ms);

/* At recovery, its journaled process is gone (it was in state was): a restartable
 * resident is unloaded all the way, without a pid (its command starts a new one),
 * and not to be restored if it died loaded; any other is gone. Returns its state. */
enum gc_resident_state gc_resident_died_while_down(struct gc_resident *r,
                                                   enum gc_resident_state was);

/* An unload asked for by hand begins: to level, from where it is; usage_before is
 * what it counts for now. Returns its state before, for gc_resident_step_undo. */
enum gc_resident_state gc_resident_unload_begin(struct gc_resident *r, unsigned level,
                                                uint64_t usage_before);
/* A step that could not begin (its journal record failed): back to state, idle. */
void gc_resident_step_undo(struct gc_resident *r, enum gc_resident_state state);

/* NVML showed the unload to level done. usage: its process usage now (its floor is
 * that less what the level keeps); freed: what NVML showed freed (its bytes, when
 * they were unknown); evicted: for a lease (to be restored); alive: its process still
 * runs (one that is not and cannot be restarted is gone). */
void gc_resident_unloaded(struct gc_resident *r, unsigned level, uint64_t usage, uint64_t freed,
                          bool evicted, bool alive, double took_s, int64_t now_ms);
/* The resident refused or could not unload: left at level from, idle. */
void gc_resident_unload_failed(struct gc_resident *r, unsigned from, const char *why);
/* It did not free its memory and was killed: nothing is left of it. */
void gc_resident_killed(struct gc_resident *r, bool evicted, int64_t now_ms);
/* It did not free its memory (on_stuck=fail): it is reloaded where it stands. */
void gc_resident_unload_stuck(struct gc_resident *r, const char *why, int64_t now_ms);

/* A reload found no room within its wait: it stays unloaded and is tried again. */
void gc_resident_reload_deferred(struct gc_resident *r, const char *why);
/* The reload started a new process (process protocol). */
void gc_resident_pid_changed(struct gc_resident *r, pid_t pid, uint64_t start_ticks);
/*
 * The reload ended: ok (it answered), alive (its process runs, or it has none). An
 * answer from a process that then died is a failure. Returns the state reached:
 * loaded; gone (its process died and cannot be restarted); failed (a reload by hand
 * starts it again). *ret_swap: it had been evicted (a swap completed); *ret_dead: a
 * pid it no longer has (0: none), to stop watching.
 */
enum gc_resident_state gc_resident_reload_done(struct gc_resident *r, bool ok, bool alive,
                                               const char *why, double took_s, int64_t now_ms,
                                               bool *ret_swap, pid_t *ret_dead);
/* A failed or gone resident reloaded by hand: a fresh start, from unloaded. */
void gc_resident_restart(struct gc_resident *r, int64_t now_ms);

/* After a restart, a step the crash cut short was asked about: loaded (1, 0, -1
 * unknown) and the level it names (-1: none). Loaded at its first level, it is
 * loaded; at a lower one, it stays unloaded there (to be restored). */
void gc_resident_probed(struct gc_resident *r, int loaded, int level);
/* Marked loaded, it reports a lower level (-1: its models unloaded): unloaded there,
 * not evicted (a demand brings it back). */
void gc_resident_reported(struct gc_resident *r, int level, int64_t now_ms);

/* One eviction for lease fewer to wait for. */
void gc_lease_eviction_done(struct gc_lease *l);

#endif
