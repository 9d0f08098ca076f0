/*
 * delivered - which queued copies earlier runs left in the Maildirs.
 *
 * Owns: one snapshot per mailbox, taken at its first lookup in this process,
 * of the (queue id, recipient index) of every queued copy in its new/ and
 * cur/: the directories are read once per mailbox and process, however many
 * recovered messages go there (a lookup is then a binary search). Copies
 * written by this process are not in it, and need not be: only a message
 * that predates the process is looked up here.
 * Must not: run on the event loop (it reads directories).
 */
#ifndef RG_DELIVERED_H
#define RG_DELIVERED_H

#include <stdbool.h>
#include <stdint.h>

/* Did an earlier run deliver recipient idx of queue id qid to
 * base/domain/local? *in_cur tells where the copy is. A mailbox that cannot
 * be read counts as not delivered: a duplicate is better than a loss. */
bool delivered_before(const char *base, const char *domain, const char *local, uint64_t qid,
		      uint32_t idx, bool *in_cur);

/* Forget every snapshot (at exit). */
void delivered_free(void);

#endif
