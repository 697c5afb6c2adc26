// SPDX-License-Identifier: GPL-2.0
/*
 * debugfs.c - /sys/kernel/debug/xpmem/stats: counters for tests and tools;
 * xpmem/processes: every open /dev/xpmem and the segments made through it
 * (xpmem-stat(1) reads both); xpmem/fail/: the driver's own fault
 * injection, on kernels that have it; xpmem/page_table_check: Y when the
 * kernel's page table checker is on, which changes how faults map
 * (attach.c).
 *
 * "*_alive" counts objects that exist now; the test suite checks that they
 * are back to zero after each test program (the leak check). The others
 * count events since the module was loaded. Locking: none; the counters are
 * atomic and read without a snapshot.
 */

#include <linux/atomic.h>
#include <linux/debugfs.h>
#include <linux/fault-inject.h>
#include <linux/seq_file.h>

#include "xpmem_internal.h"

static atomic_long_t xpmem_stats[XPMEM_NR_STATS];

static const char *const xpmem_stat_names[XPMEM_NR_STATS] = {
	[XPMEM_STAT_FILES_ALIVE] = "files_alive",
	[XPMEM_STAT_SEGMENTS_ALIVE] = "segments_alive",
	[XPMEM_STAT_PERMITS_ALIVE] = "permits_alive",
	[XPMEM_STAT_ATTACHMENTS_ALIVE] = "attachments_alive",
	[XPMEM_STAT_SEGMENTS_MADE] = "segments_made",
	[XPMEM_STAT_PERMITS_GOT] = "permits_got",
	[XPMEM_STAT_ATTACHES] = "attaches",
	[XPMEM_STAT_FAULTS] = "faults",
	[XPMEM_STAT_FAULT_RETRIES] = "fault_retries",
	[XPMEM_STAT_FAULT_SIGBUS] = "fault_sigbus",
	[XPMEM_STAT_FAULT_SOURCE_BUSY] = "fault_source_busy",
	[XPMEM_STAT_WRITE_UPGRADES] = "write_upgrades",
	[XPMEM_STAT_FAULT_IN_UNLOCKED] = "fault_in_unlocked",
	[XPMEM_STAT_PAGES_MAPPED] = "pages_mapped",
	[XPMEM_STAT_PMDS_MAPPED] = "pmds_mapped",
	[XPMEM_STAT_PMDS_PTCHECK] = "pmds_ptcheck_ptes",
	[XPMEM_STAT_INVALIDATIONS] = "invalidations",
	[XPMEM_STAT_INV_UNMAP] = "inv_unmap",
	[XPMEM_STAT_INV_CLEAR] = "inv_clear",
	[XPMEM_STAT_INV_PROTECTION_VMA] = "inv_protection_vma",
	[XPMEM_STAT_INV_PROTECTION_PAGE] = "inv_protection_page",
	[XPMEM_STAT_INV_SOFT_DIRTY] = "inv_soft_dirty",
	[XPMEM_STAT_INV_RELEASE] = "inv_release",
	[XPMEM_STAT_INV_MIGRATE] = "inv_migrate",
	[XPMEM_STAT_INV_EXCLUSIVE] = "inv_exclusive",
	[XPMEM_STAT_INV_OTHER] = "inv_other",
	[XPMEM_STAT_INV_NESTED] = "inv_nested_skipped",
	[XPMEM_STAT_INV_NONBLOCK_REFUSED] = "inv_nonblock_refused",
	[XPMEM_STAT_INV_ZAPPED] = "inv_zapped",
	[XPMEM_STAT_INV_UNATTACHED] = "inv_unattached",
};

static struct dentry *xpmem_debugfs_dir;
/* xpmem/page_table_check: whether the kernel's checker is on (compat.h). */
static bool xpmem_ptcheck;

void xpmem_stat_inc(enum xpmem_stat stat)
{
	atomic_long_inc(&xpmem_stats[stat]);
}

void xpmem_stat_dec(enum xpmem_stat stat)
{
	atomic_long_dec(&xpmem_stats[stat]);
}

void xpmem_stat_add(enum xpmem_stat stat, long n)
{
	atomic_long_add(n, &xpmem_stats[stat]);
}

static int stats_show(struct seq_file *m, void *unused)
{
	int i;

	for (i = 0; i < XPMEM_NR_STATS; i++)
		seq_printf(m, "%s %ld\n", xpmem_stat_names[i],
			   atomic_long_read(&xpmem_stats[i]));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(stats);

/*
 * One "process" line per open of /dev/xpmem (a process usually has one),
 * then one "segment" line per segment made through it:
 *   process <pid> <segments> <permits> <comm>
 *   segment <pid> <segid> <start> <size> <attachments>
 * pid is the opener's in the initial namespace, 0 once it has exited (an
 * inherited or passed descriptor outlives it, and its number may be
 * reused). comm is last, with every byte that is not printable ASCII, a
 * blank or a backslash escaped in octal. Root only: it shows where other
 * processes' memory is.
 *
 * A seq_file iterator over xpmem_files: xpmem_files_lock is held for one
 * buffer fill at most (->start to ->stop), and a record that overflows the
 * buffer is printed again alone, not the whole listing, so a reader cannot
 * hold up the opens and closes of /dev/xpmem for long.
 */
static void *processes_start(struct seq_file *m, loff_t *pos)
{
	mutex_lock(&xpmem_files_lock);
	return seq_list_start(&xpmem_files, *pos);
}

static void *processes_next(struct seq_file *m, void *v, loff_t *pos)
{
	return seq_list_next(v, &xpmem_files, pos);
}

static void processes_stop(struct seq_file *m, void *v)
{
	mutex_unlock(&xpmem_files_lock);
}

static void xpmem_seq_comm(struct seq_file *m, const char *comm)
{
	const unsigned char *c;

	for (c = (const unsigned char *)comm; *c; c++) {
		if (*c <= ' ' || *c >= 0x7f || *c == '\\')
			seq_printf(m, "\\%03o", *c);
		else
			seq_putc(m, *c);
	}
}

static int processes_show(struct seq_file *m, void *v)
{
	struct xpmem_file *xf = list_entry(v, struct xpmem_file, node);
	struct xpmem_segment *seg;
	pid_t pid = pid_has_task(xf->pid, PIDTYPE_TGID) ? pid_nr(xf->pid) : 0;

	mutex_lock(&xf->lock);
	seq_printf(m, "process %d %u %d ", pid, xf->nr_segments, atomic_read(&xf->nr_permits));
	xpmem_seq_comm(m, xf->comm);
	seq_putc(m, '\n');
	list_for_each_entry(seg, &xf->segments, owner_node)
		seq_printf(m, "segment %d %#llx %#lx %lu %u\n", pid, seg->segid,
			   seg->start, seg->size, READ_ONCE(seg->nr_attached));
	mutex_unlock(&xf->lock);
	return 0;
}

static const struct seq_operations processes_sops = {
	.start = processes_start,
	.next = processes_next,
	.stop = processes_stop,
	.show = processes_show,
};
DEFINE_SEQ_ATTRIBUTE(processes);

#ifdef CONFIG_FAULT_INJECTION
/*
 * The driver's own failure points (xpmem_should_fail() callers in
 * attach.c), driven like failslab: by /proc/<tid>/fail-nth, or by the
 * knobs in xpmem/fail/ (probability, times, ...). Off unless asked.
 */
static DECLARE_FAULT_ATTR(xpmem_fail_attr);

bool xpmem_should_fail(void)
{
	return should_fail(&xpmem_fail_attr, 1);
}
#endif

/* debugfs is optional: failures here only lose the counters' file. */
void xpmem_debugfs_init(void)
{
	xpmem_debugfs_dir = debugfs_create_dir("xpmem", NULL);
	debugfs_create_file("stats", 0444, xpmem_debugfs_dir, NULL, &stats_fops);
	debugfs_create_file("processes", 0400, xpmem_debugfs_dir, NULL, &processes_fops);
	xpmem_ptcheck = xpmem_ptcheck_on();
	debugfs_create_bool("page_table_check", 0444, xpmem_debugfs_dir, &xpmem_ptcheck);
#ifdef CONFIG_FAULT_INJECTION_DEBUG_FS
	fault_create_debugfs_attr("fail", xpmem_debugfs_dir, &xpmem_fail_attr);
#endif
}

void xpmem_debugfs_exit(void)
{
	debugfs_remove_recursive(xpmem_debugfs_dir);
}
