/*
 * relay.h — a TCP relay the cluster tests own: it listens on 127.0.0.1 (a
 * free port) and forwards every connection to 127.0.0.1:TARGET, in one
 * thread with poll(). The test switches its mode at any moment:
 *   RELAY_PASS       forward both ways;
 *   RELAY_REFUSE     reset every open connection and every new one at once;
 *   RELAY_BLACKHOLE  accept, but move no byte either way (open connections
 *                    stall, as behind a dropped route; they resume on PASS);
 *   RELAY_DELAY      forward every chunk DELAY_MS after it arrived.
 * Nodes advertise the relay's address, so node-to-node traffic crosses it.
 */
#ifndef CLUSTER_RELAY_H
#define CLUSTER_RELAY_H

#include <stdint.h>

typedef enum { RELAY_PASS, RELAY_REFUSE, RELAY_BLACKHOLE, RELAY_DELAY } relay_mode;

typedef struct relay relay;

/* Listen on a free 127.0.0.1 port and forward to TARGET_PORT (0: none yet,
 * connections are refused until relay_set_target). NULL on failure. The
 * caller owns the relay and frees it with relay_stop. */
relay *relay_start(int target_port);
int relay_port(const relay *r);
void relay_set_target(relay *r, int target_port);
void relay_set_mode(relay *r, relay_mode mode, int delay_ms);
/* Connections accepted and bytes forwarded so far (both directions). */
uint64_t relay_accepted(relay *r);
uint64_t relay_bytes(relay *r);
/* Close every connection, stop the thread, free R (NULL is fine). */
void relay_stop(relay *r);

#endif
