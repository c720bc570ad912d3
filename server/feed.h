/*
 * feed.h — the database's change feed inside kvd.
 *
 * The engine calls kvd's commit listener (rc_set_commit_listener) after
 * every write that changed something, whichever path made it: key routes,
 * batches, scripts, bucket and token changes (the system keyspace), and
 * streams applied with rc_load (a follower's replication: "anything up to
 * seq S"). The feed turns each into park_notify calls on PARK_CH_DATA, so
 * waiters (watch.c, the backup long-poll) are checked without polling, and
 * remembers recent removals so that a wait arriving after a key was deleted
 * knows it changed.
 *
 * Removals. A deleted key leaves no trace in the keydir, so the feed keeps
 * the last FEED_REMOVALS deletions (keyspace and key hashes, the key's first
 * bytes, the seq) in a ring. Below its floor (the oldest seq it no longer
 * covers: the database's last seq when kvd started, raised as the ring
 * wraps and by every loaded stream) it cannot tell, and answers "changed":
 * a wait then answers at once with the current state and the client's next
 * wait, with the fresh X-Ringcask-Seq, is above the floor.
 */
#ifndef KVD_FEED_H
#define KVD_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvd.h"

#define FEED_REMOVALS 4096u

typedef struct feed feed;

/* Create the feed of SRV->db and install it as the engine's commit listener
 * (before serving). NULL when out of memory. */
feed *feed_start(kvd *srv);
/* Remove the listener and free. F may be NULL. */
void feed_stop(kvd *srv, feed *f);

/* Something outside the engine's write calls changed KS (a keyspace name;
 * NULL: everything) up to SEQ: wake its waiters. For kvd's own use (a
 * bucket dropped) and for modules that change data another way. */
void feed_changed(kvd *srv, const char *ks, uint64_t seq);

/* Whether a key of keyspace KS equal to KEY (PREFIX false) or starting
 * with it (PREFIX true) may have been removed after seq SINCE. */
bool feed_removed_since(feed *f, const char *ks, const void *key, size_t klen, bool prefix,
                        uint64_t since);

#endif
