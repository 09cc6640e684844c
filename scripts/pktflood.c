/* pktflood: replay a pcap's frames out of one interface as fast as the kernel takes them, or
 * at a given rate: a faster sender than tcpreplay for scripts/bench.py live (--sender flood).
 *
 * tcpreplay sends one frame per system call and tops out near 400 k packets/s on this 2-core
 * machine; this sends 512 frames per sendmmsg(2) on an AF_PACKET socket that bypasses the
 * queueing discipline (PACKET_QDISC_BYPASS), so the kernel's own path is what limits it. The
 * whole file is read into memory first (as tcpreplay --preload-pcap does).
 *
 *   cc -O2 -o /tmp/pktflood scripts/pktflood.c
 *   ip netns exec plbench-a /tmp/pktflood -i plb0 [--pps N] [--loop N] FILE
 *
 * It prints tcpreplay's summary lines ("Actual: N packets (B bytes) sent in S seconds",
 * "Rated: R Bps, M Mbps, P pps", "Failed packets: F") so bench.py reads either sender alike.
 * With --pps the frames go out in batches of at most 64, each batch not before its time.
 * Only ever used on the veth pair bench.py creates in its own namespaces.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define BATCH 512

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(void) {
    fprintf(stderr, "usage: pktflood -i IFACE [--pps N] [--loop N] FILE.pcap\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *iface = NULL, *path = NULL;
    double pps = 0;
    long loops = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-i") && i + 1 < argc) iface = argv[++i];
        else if (!strcmp(argv[i], "--pps") && i + 1 < argc) pps = atof(argv[++i]);
        else if (!strcmp(argv[i], "--loop") && i + 1 < argc) loops = atol(argv[++i]);
        else if (argv[i][0] == '-') usage();
        else path = argv[i];
    }
    if (!iface || !path || loops < 1 || pps < 0) usage();

    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); return 2; }
    uint32_t gh[6];
    if (fread(gh, 4, 6, f) != 6) { fprintf(stderr, "%s: short header\n", path); return 2; }
    int swap;
    if (gh[0] == 0xa1b2c3d4 || gh[0] == 0xa1b23c4d) swap = 0;
    else if (gh[0] == 0xd4c3b2a1 || gh[0] == 0x4d3cb2a1) swap = 1;
    else { fprintf(stderr, "%s: not a classic pcap\n", path); return 2; }
    /* Frames packed into one buffer; offsets and lengths apart. */
    size_t cap = 1 << 20, used = 0, n = 0, ncap = 1 << 16;
    unsigned char *data = malloc(cap);
    size_t *off = malloc(ncap * sizeof *off);
    uint32_t *len = malloc(ncap * sizeof *len);
    uint32_t rh[4];
    while (fread(rh, 4, 4, f) == 4) {
        uint32_t incl = swap ? __builtin_bswap32(rh[2]) : rh[2];
        if (incl > 262144) { fprintf(stderr, "%s: record of %u bytes\n", path, incl); return 2; }
        while (used + incl > cap) data = realloc(data, cap *= 2);
        if (n == ncap) {
            ncap *= 2;
            off = realloc(off, ncap * sizeof *off);
            len = realloc(len, ncap * sizeof *len);
        }
        if (!data || !off || !len) { fprintf(stderr, "out of memory\n"); return 2; }
        if (fread(data + used, 1, incl, f) != incl) break;
        off[n] = used;
        len[n++] = incl;
        used += incl;
    }
    fclose(f);
    if (!n) { fprintf(stderr, "%s: no packets\n", path); return 2; }

    int s = socket(AF_PACKET, SOCK_RAW, 0);
    if (s < 0) { perror("socket"); return 2; }
    int one = 1;
    setsockopt(s, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
    int sndbuf = 64 << 20;
    setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf);
    struct sockaddr_ll sll = {0};
    sll.sll_family = AF_PACKET;
    sll.sll_ifindex = if_nametoindex(iface);
    if (!sll.sll_ifindex) { perror(iface); return 2; }
    if (bind(s, (struct sockaddr *)&sll, sizeof sll) < 0) { perror("bind"); return 2; }

    static struct mmsghdr msgs[BATCH];
    static struct iovec iov[BATCH];
    unsigned long long sent = 0, bytes = 0, failed = 0, total = (unsigned long long)n * loops;
    unsigned long long next = 0; /* index of the next frame over all loops */
    int per = pps > 0 ? 64 : BATCH;
    double t0 = now();
    while (next < total) {
        int k = 0;
        if (pps > 0) {
            double due = t0 + next / pps;
            while (now() < due) {}
        }
        for (; k < per && next + k < total; k++) {
            size_t i = (next + k) % n;
            iov[k].iov_base = data + off[i];
            iov[k].iov_len = len[i];
            memset(&msgs[k].msg_hdr, 0, sizeof msgs[k].msg_hdr);
            msgs[k].msg_hdr.msg_iov = &iov[k];
            msgs[k].msg_hdr.msg_iovlen = 1;
        }
        int done = 0;
        while (done < k) {
            int r = sendmmsg(s, msgs + done, k - done, 0);
            if (r < 0) {
                if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR) continue;
                failed++;  /* this frame could not be sent: skip it */
                done++;
                continue;
            }
            for (int j = done; j < done + r; j++) bytes += iov[j].iov_len;
            sent += r;
            done += r;
        }
        next += k;
    }
    double secs = now() - t0;
    printf("Actual: %llu packets (%llu bytes) sent in %.6f seconds\n", sent, bytes, secs);
    printf("Rated: %.1f Bps, %.2f Mbps, %.2f pps\n", bytes / secs, bytes * 8 / secs / 1e6,
           sent / secs);
    printf("Failed packets:  %llu\n", failed);
    return 0;
}
