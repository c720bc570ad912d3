/*
 * test_cluster_partition.c — the network fails, through the harness's relays
 * (guarantee 3, fencing, and guarantee 1 under partitions):
 *  - the leader cut from its followers but not from etcd;
 *  - the leader cut from etcd but not from its followers;
 *  - etcd itself killed for 10 s, then back.
 * Writers send to every node and follow no redirect, so each acknowledgement
 * names the node that gave it: at most one node acknowledges at any moment,
 * a leader that cannot renew stops acknowledging before its lease can have
 * expired, and every acknowledged write survives.
 */
#include "clustertest.h"

TestSuite(partition, .fini = group_teardown, .timeout = 1200);

static const char *const sync3[] = {"--replication", "sync", NULL};

static void converge_and_check(ledger *led)
{
    cr_assert(wait_converged(&G, 120000), "the group did not converge after the partition");
    for (int i = 0; i < G.n; i++)
        cr_assert_eq(missing_on(led, i), 0, "acknowledged writes missing on %s", G.nodes[i].id);
}

Test(partition, leader_cut_from_followers_but_not_etcd)
{
    start_group(3, sync3);
    ledger_init(&LED);
    writers_start(&W, &G, &LED, 3, true, "f");
    usleep(500000);
    int l = leader_now(NULL);
    long long t_cut = mono_ms();
    /* followers pull from the leader's advertised address: black-hole it */
    relay_set_mode(G.nodes[l].front, RELAY_BLACKHOLE, 0);
    usleep((TTL_S * 3 + 4) * 1000000u);
    long long t_heal = mono_ms();
    relay_set_mode(G.nodes[l].front, RELAY_PASS, 0);
    usleep(4000000);
    writers_stop(&W);
    size_t flaps = leadership_flaps(&LED, t_cut, t_heal);
    cr_assert_eq(flaps, 0, "two nodes acknowledged writes alternately during the partition");
    int n = leader_now(NULL);
    fprintf(stderr, "cut from followers: leader before %s, after %s; %zu acks\n", G.nodes[l].id,
            G.nodes[n].id, LED.n);
    if (n != l)
        cr_assert_eq(acks_after(&LED, l, t_cut + TTL_S * 1000LL, false), 0,
                     "the cut leader acknowledged writes after another node could lead");
    converge_and_check(&LED);
    ledger_free(&LED);
}

Test(partition, leader_cut_from_etcd_but_not_followers)
{
    start_group(3, sync3);
    ledger_init(&LED);
    writers_start(&W, &G, &LED, 3, true, "e");
    usleep(500000);
    long long e0 = 0;
    int l = leader_now(&e0);
    long long t_cut = mono_ms();
    relay_set_mode(G.nodes[l].to_etcd, RELAY_BLACKHOLE, 0);
    long long e1 = 0;
    int n = wait_leader(&G, 30000, &e1, l);
    long long t_elected = mono_ms();
    cr_assert(n >= 0, "no other node led within 30 s of the leader losing etcd");
    cr_assert_leq(t_elected - t_cut, 30000);
    usleep(3000000);
    long long t_heal = mono_ms();
    relay_set_mode(G.nodes[l].to_etcd, RELAY_PASS, 0);
    usleep(4000000);
    writers_stop(&W);
    /* its last renewal was before t_cut: its lease ends by t_cut + TTL */
    cr_assert_eq(acks_after(&LED, l, t_cut + TTL_S * 1000LL, false), 0,
                 "the leader cut from etcd acknowledged writes sent after its lease expired");
    cr_assert_eq(leadership_flaps(&LED, t_cut, t_heal), 0,
                 "two nodes acknowledged writes alternately during the partition");
    fprintf(stderr, "cut from etcd: %s replaced by %s %lld ms after the cut\n", G.nodes[l].id,
            G.nodes[n].id, t_elected - t_cut);
    converge_and_check(&LED);
    ledger_free(&LED);
}

Test(partition, etcd_killed_for_10s_stops_writes_then_service_resumes)
{
    start_group(3, sync3);
    ledger_init(&LED);
    writers_start(&W, &G, &LED, 3, true, "d");
    usleep(1000000);
    long long t_kill = mono_ms();
    etcd_kill(&G.etcd);
    usleep(10000000);
    long long t_back = mono_ms();
    cr_assert(etcd_restart(&G.etcd), "etcd did not come back");
    long long t_ok = 0;
    int n = first_ack(&LED, -1, 60000, &t_ok);
    cr_assert(n >= 0, "no node took a write within 60 s of etcd's return");
    fprintf(stderr, "etcd down 10 s: first write accepted %lld ms after its return (by %s)\n",
            t_ok - t_back, G.nodes[n].id);
    usleep(2000000);
    writers_stop(&W);
    /* from t_kill + TTL until etcd is back, nobody may acknowledge */
    size_t during = 0;
    pthread_mutex_lock(&LED.mu);
    for (size_t k = 0; k < LED.n; k++) {
        const ack *a = &LED.acks[k];
        if (a->t_send > t_kill + TTL_S * 1000LL && a->t_recv < t_back) {
            if (during++ == 0)
                fprintf(stderr, "%s acknowledged %s sent %lld ms after etcd died\n",
                        G.nodes[a->node].id, a->key, a->t_send - t_kill);
        }
    }
    pthread_mutex_unlock(&LED.mu);
    cr_assert_eq(during, 0,
                 "%zu writes were acknowledged while no lease could be renewed (etcd down)",
                 during);
    converge_and_check(&LED);
    ledger_free(&LED);
}
