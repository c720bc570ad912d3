/*
 * procstat.h — what kvbench measures from outside the engine: process memory
 * and disk writes from /proc/self, directory sizes from the file system.
 */
#ifndef KVB_PROCSTAT_H
#define KVB_PROCSTAT_H

#include <stdint.h>

typedef struct kvb_mem {
    uint64_t rss;      /* VmRSS, bytes */
    uint64_t rss_anon; /* RssAnon: heap and anonymous maps (an index, caches) */
    uint64_t rss_file; /* RssFile: file pages mapped (LMDB's map, mmap'd segments) */
} kvb_mem;

typedef struct kvb_du {
    uint64_t allocated; /* sum of st_blocks * 512: what the disk holds */
    uint64_t apparent;  /* sum of st_size */
    uint64_t files;
} kvb_dusage;

int kvb_mem_read(kvb_mem *out);
/* Anonymous RSS once it holds still after a load (polls up to 8 s). */
void kvb_mem_settle(kvb_mem *out);
/* write_bytes of /proc/self/io: bytes this process caused to be written to
 * storage (counted when pages are dirtied, all threads). 0 if unreadable. */
uint64_t kvb_io_write_bytes(void);
/* Sizes of every regular file under DIR (recursive). */
int kvb_du(const char *dir, kvb_dusage *out);
/* rm -rf DIR (only its regular files and subdirectories). */
int kvb_rmtree(const char *dir);
int kvb_mkdirs(const char *dir);
uint64_t kvb_now_ns(void);
/* CPU time (user + system) of the whole process, all threads, in ns. */
uint64_t kvb_cpu_ns(void);

#endif /* KVB_PROCSTAT_H */
