/*
 * cluster_dir.c — the CLUSTER file of a data directory: which replica group
 * the directory belongs to (FORMAT.md "CLUSTER"). A directory first started
 * with --cluster G is claimed for G; starting it with another group is
 * refused, so two groups never mix their histories by a typo in a unit
 * file. Text, two lines: "ringcask-cluster 1" (format and version) and
 * "group NAME"; written under a temporary name, synced and renamed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster_int.h"

#define CLUSTER_FILE "CLUSTER"
#define CLUSTER_MAGIC "ringcask-cluster 1\n"

static int write_claim(const char *dir, const char *group, char *why, size_t cap)
{
    char tmp[4096], path[4096];
    snprintf(tmp, sizeof tmp, "%s/" CLUSTER_FILE ".tmp", dir);
    snprintf(path, sizeof path, "%s/" CLUSTER_FILE, dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(why, cap, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    char text[256];
    int n = snprintf(text, sizeof text, CLUSTER_MAGIC "group %s\n", group);
    bool ok = n > 0 && write(fd, text, (size_t)n) == n && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        snprintf(why, cap, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

int cluster_dir_claim(const char *dir, const char *group, char *why, size_t cap)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/" CLUSTER_FILE, dir);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno != ENOENT) {
            snprintf(why, cap, "%s: %s", path, strerror(errno));
            return -1;
        }
        return write_claim(dir, group, why, cap);
    }
    char line1[64] = "", line2[256] = "";
    bool read_ok = fgets(line1, sizeof line1, f) != NULL && fgets(line2, sizeof line2, f) != NULL;
    fclose(f);
    if (!read_ok || strcmp(line1, CLUSTER_MAGIC) != 0 || strncmp(line2, "group ", 6) != 0) {
        snprintf(why, cap,
                 "%s is not a CLUSTER file of version 1 (remove it only if the "
                 "directory is yours to reuse)",
                 path);
        return -1;
    }
    char *name = line2 + 6;
    name[strcspn(name, "\n")] = '\0';
    if (strcmp(name, group) != 0) {
        snprintf(why, cap, "the directory belongs to replica group '%s', not '%s' (%s)", name,
                 group, path);
        return -1;
    }
    return 0;
}

void cluster_dir_remove(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, de->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(path);
}

int cluster_dir_finish_reclone(const char *dir, char *why, size_t cap)
{
    char staging[4096], marker[4200], old[4096];
    snprintf(staging, sizeof staging, "%s.reclone", dir);
    snprintf(marker, sizeof marker, "%s/RECLONED", staging);
    snprintf(old, sizeof old, "%s.old", dir);
    struct stat st;
    if (stat(staging, &st) != 0)
        return 0;
    if (stat(marker, &st) != 0) { /* a re-clone that did not finish */
        cluster_dir_remove(staging);
        return 0;
    }
    cluster_dir_remove(old);
    if (stat(dir, &st) == 0 && rename(dir, old) != 0) {
        snprintf(why, cap, "cannot move %s aside for its re-clone: %s", dir, strerror(errno));
        return -1;
    }
    if (rename(staging, dir) != 0) {
        snprintf(why, cap, "cannot move the re-clone %s into place: %s", staging, strerror(errno));
        return -1;
    }
    char m2[4200];
    snprintf(m2, sizeof m2, "%s/RECLONED", dir);
    unlink(m2);
    cluster_dir_remove(old);
    return 1;
}
