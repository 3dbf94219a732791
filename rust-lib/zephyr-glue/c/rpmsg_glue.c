/*
 * SPDX-License-Identifier: Apache-2.0
 *
 * C side of rust-lib/zephyr-glue: the few things Rust cannot reach directly.
 *
 * - ivshmem_* are `static inline` syscall wrappers (no linkable symbol), so this
 *   file exports real functions for them (rpmsg_glue_ivshmem_*).
 * - The doorbell: one k_poll signal per MSI-X vector, registered with
 *   ivshmem_register_handler(), and a wait function over all of them.
 * - Console text without log prefixes (shell when active, printk otherwise).
 * - The host's `rpmsg_ivshmem send <string> <number of messages>` shell command,
 *   with mandatory arguments so Zephyr's shell itself prints the usage on a wrong
 *   count, `rpmsg_ivshmem bench [payload] [count]`, `rpmsg_ivshmem doorbell [count]`
 *   and `rpmsg_ivshmem status`; the remote's `rpmsg_ivshmem status`
 *   (CONFIG_RPMSG_IVSHMEM_REMOTE). Their handlers are Rust (rpmsg_glue_shell_send /
 *   _bench / _doorbell / _status / _remote_status in the glue crate).
 * - A receive thread defined here (K_THREAD_DEFINE, not started) whose entry is
 *   Rust; Rust starts it with rpmsg_glue_rx_thread_start().
 *
 * Keep every signature here in sync with rust-lib/zephyr-glue/src/ffi.rs.
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zephyr/device.h>
#include <zephyr/devicetree.h>
#include <zephyr/drivers/virtualization/ivshmem.h>
#include <zephyr/kernel.h>
#include <zephyr/logging/log.h>
#include <zephyr/logging/log_ctrl.h>
#include <zephyr/sys/mpsc_pbuf.h>
#include <zephyr/sys/printk.h>

#ifdef CONFIG_SHELL
#include <zephyr/shell/shell.h>
#endif
#ifdef CONFIG_SHELL_BACKEND_SERIAL
#include <zephyr/shell/shell_uart.h>
#endif

#define IVSHMEM_NODE DT_COMPAT_GET_ANY_STATUS_OKAY(qemu_ivshmem)

#if !DT_NODE_EXISTS(IVSHMEM_NODE)
#error "rpmsg_glue: no enabled \"qemu,ivshmem\" devicetree node (see boards/<board>.overlay)"
#endif

#define RPMSG_GLUE_VECTORS CONFIG_IVSHMEM_MSI_X_VECTORS

/* CONFIG_RPMSG_IVSHMEM_LOG_LEVEL (Kconfig's logging template; default: the default
 * level) also decides which lines the Rust side compiles in (src/logger.rs). */
LOG_MODULE_REGISTER(rpmsg, CONFIG_RPMSG_IVSHMEM_LOG_LEVEL);

static const struct device *const ivshmem_dev = DEVICE_DT_GET(IVSHMEM_NODE);

static struct k_poll_signal doorbell_signal[RPMSG_GLUE_VECTORS];
static bool doorbell_registered[RPMSG_GLUE_VECTORS];

/* ---- ivshmem ---------------------------------------------------------------- */

bool rpmsg_glue_ivshmem_is_ready(void)
{
	return device_is_ready(ivshmem_dev);
}

size_t rpmsg_glue_ivshmem_get_mem(uintptr_t *addr)
{
	return ivshmem_get_mem(ivshmem_dev, addr);
}

uint32_t rpmsg_glue_ivshmem_get_id(void)
{
	return ivshmem_get_id(ivshmem_dev);
}

uint16_t rpmsg_glue_ivshmem_get_vectors(void)
{
	return ivshmem_get_vectors(ivshmem_dev);
}

int rpmsg_glue_ivshmem_int_peer(uint32_t peer_id, uint16_t vector)
{
	return ivshmem_int_peer(ivshmem_dev, peer_id, vector);
}

/* Route doorbells on `vector` to this file's k_poll signal for that vector. */
int rpmsg_glue_ivshmem_register_handler(uint16_t vector)
{
	int ret;

	if (vector >= RPMSG_GLUE_VECTORS) {
		return -EINVAL;
	}
	if (doorbell_registered[vector]) {
		return 0;
	}
	k_poll_signal_init(&doorbell_signal[vector]);
	ret = ivshmem_register_handler(ivshmem_dev, &doorbell_signal[vector], vector);
	if (ret == 0) {
		doorbell_registered[vector] = true;
	}
	return ret;
}

/*
 * Wait for a doorbell on any registered vector.
 * timeout_ms < 0: forever; 0: just check.
 * Returns a bit mask of the vectors that rang (>0), -EAGAIN on timeout,
 * -ENODEV if no vector is registered, or another negative errno.
 */
int rpmsg_glue_doorbell_wait(int32_t timeout_ms)
{
	struct k_poll_event events[RPMSG_GLUE_VECTORS];
	uint8_t map[RPMSG_GLUE_VECTORS];
	int n = 0;
	int mask = 0;
	int ret;

	for (int v = 0; v < RPMSG_GLUE_VECTORS; v++) {
		if (doorbell_registered[v]) {
			k_poll_event_init(&events[n], K_POLL_TYPE_SIGNAL,
					  K_POLL_MODE_NOTIFY_ONLY, &doorbell_signal[v]);
			map[n] = (uint8_t)v;
			n++;
		}
	}
	if (n == 0) {
		return -ENODEV;
	}

	ret = k_poll(events, n, timeout_ms < 0 ? K_FOREVER : K_MSEC(timeout_ms));
	if (ret == -EAGAIN) {
		return -EAGAIN;
	}
	if (ret != 0 && ret != -EINTR) {
		return ret;
	}
	for (int i = 0; i < n; i++) {
		unsigned int signaled;
		int result;

		k_poll_signal_check(&doorbell_signal[map[i]], &signaled, &result);
		if (signaled) {
			k_poll_signal_reset(&doorbell_signal[map[i]]);
			mask |= 1 << map[i];
		}
	}
	return mask != 0 ? mask : -EAGAIN;
}

/* Raise again the doorbells of `mask` (vectors, as rpmsg_glue_doorbell_wait returned
 * them): a waiter that took doorbells meant for another thread hands them on. The
 * signals stay raised until the next rpmsg_glue_doorbell_wait takes them.
 */
void rpmsg_glue_doorbell_raise(uint32_t mask)
{
	for (int v = 0; v < RPMSG_GLUE_VECTORS; v++) {
		if ((mask & (1U << v)) != 0 && doorbell_registered[v]) {
			k_poll_signal_raise(&doorbell_signal[v], v);
		}
	}
}

#ifdef CONFIG_RPMSG_IVSHMEM_BENCH
/* The host's `rpmsg_ivshmem doorbell` (a bare doorbell ping-pong, no RPMsg): doorbells on
 * its vector go to a signal of their own, which rpmsg_glue_doorbell_wait (the receive
 * thread's wait) leaves alone, so neither takes the other's doorbells. One vector.
 */
static struct k_poll_signal own_signal;
static bool own_registered;

/* Route doorbells on `vector` (not one given to rpmsg_glue_ivshmem_register_handler) to
 * rpmsg_glue_doorbell_own_wait. Idempotent.
 */
int rpmsg_glue_doorbell_own(uint16_t vector)
{
	int ret;

	if (vector >= RPMSG_GLUE_VECTORS || doorbell_registered[vector]) {
		return -EINVAL;
	}
	if (own_registered) {
		return 0;
	}
	k_poll_signal_init(&own_signal);
	ret = ivshmem_register_handler(ivshmem_dev, &own_signal, vector);
	own_registered = ret == 0;
	return ret;
}

/* Wait for a doorbell on that vector. timeout_ms < 0: forever; 0: just check (and
 * forget). Returns 0 when it rang, -EAGAIN on timeout, -ENODEV if not routed.
 */
int rpmsg_glue_doorbell_own_wait(int32_t timeout_ms)
{
	struct k_poll_event event;
	unsigned int signaled;
	int result;

	if (!own_registered) {
		return -ENODEV;
	}
	k_poll_event_init(&event, K_POLL_TYPE_SIGNAL, K_POLL_MODE_NOTIFY_ONLY, &own_signal);
	(void)k_poll(&event, 1, timeout_ms < 0 ? K_FOREVER : K_MSEC(timeout_ms));
	k_poll_signal_check(&own_signal, &signaled, &result);
	if (!signaled) {
		return -EAGAIN;
	}
	k_poll_signal_reset(&own_signal);
	return 0;
}
#endif

/* ---- time --------------------------------------------------------------------- */

/* The hardware cycle counter (the ARM generic timer: 62.5 MHz on QEMU virt), for
 * timeouts, measurements and short spins; the kernel's tick clock has
 * CONFIG_SYS_CLOCK_TICKS_PER_SEC resolution (1 ms with our qemu_cortex_a53 config).
 */
uint64_t rpmsg_glue_cycles(void)
{
	return k_cycle_get_64();
}

uint32_t rpmsg_glue_cycles_per_sec(void)
{
	return (uint32_t)sys_clock_hw_cycles_per_sec();
}

/* CONFIG_RPMSG_IVSHMEM_SPIN_US (from C: zephyr-lang-rust's kconfig module leaves out
 * integer options whose value is 0).
 */
uint32_t rpmsg_glue_spin_us(void)
{
	return CONFIG_RPMSG_IVSHMEM_SPIN_US;
}

/* CONFIG_RPMSG_IVSHMEM_PEER_ID: -1 automatic, else the id to ring (see Kconfig). */
int32_t rpmsg_glue_peer_id_config(void)
{
	return CONFIG_RPMSG_IVSHMEM_PEER_ID;
}

/* ---- event: "something changed", from one thread to a waiting one -------------- */

/* E.g. a shell command that ended tells the host's receive thread, which sleeps
 * on this instead of the doorbell while the command receives. Binary: several
 * raises before one wait give one wake-up.
 */
static K_SEM_DEFINE(rpmsg_glue_event_sem, 0, 1);

void rpmsg_glue_event_raise(void)
{
	k_sem_give(&rpmsg_glue_event_sem);
}

/* timeout_ms < 0: forever. Returns 0 when raised, -EAGAIN on timeout. */
int rpmsg_glue_event_wait(int32_t timeout_ms)
{
	return k_sem_take(&rpmsg_glue_event_sem,
			  timeout_ms < 0 ? K_FOREVER : K_MSEC(timeout_ms));
}

/* ---- console (no log prefixes, no colours) ----------------------------------- */

/* `sh` is the shell a command handler was given. Without CONFIG_SHELL this
 * is never called, but it exists so the Rust side links in every image.
 */
void rpmsg_glue_shell_write(const void *sh, const char *buf, size_t len)
{
#ifdef CONFIG_SHELL
	shell_fprintf((const struct shell *)sh, SHELL_NORMAL, "%.*s", (int)len, buf);
#else
	ARG_UNUSED(sh);
	printk("%.*s", (int)len, buf);
#endif
}

void rpmsg_glue_console_write(const char *buf, size_t len)
{
#ifdef CONFIG_SHELL_BACKEND_SERIAL
	const struct shell *sh = shell_backend_uart_get_ptr();

	/* shell_fprintf from another thread redraws the prompt after the text;
	 * before the shell is up it would drop the text, so use printk then.
	 */
	if (sh != NULL && sh->ctx->state == SHELL_STATE_ACTIVE) {
		shell_fprintf(sh, SHELL_NORMAL, "%.*s", (int)len, buf);
		return;
	}
#endif
	printk("%.*s", (int)len, buf);
}

/* ---- diagnostics through Zephyr logging (Rust: src/logger.rs) ---------------- */

/* level: 1 error, 2 warning, 3 info, 4 debug (Zephyr's LOG_LEVEL_* values).
 * `msg` is NUL-terminated; deferred logging copies it.
 */
void rpmsg_glue_log(uint32_t level, const char *msg)
{
	switch (level) {
	case LOG_LEVEL_ERR:
		LOG_ERR("%s", msg);
		break;
	case LOG_LEVEL_WRN:
		LOG_WRN("%s", msg);
		break;
	case LOG_LEVEL_INF:
		LOG_INF("%s", msg);
		break;
	default:
		LOG_DBG("%s", msg);
		break;
	}
}

/* Deferred logging: waits (2 ms sleeps, at most 0.5 s) until the lines logged so far
 * have left the log core and, on the shell, the shell's log buffer, so that text
 * printed next (a banner) comes after the log lines that explain it. The shell writes
 * a log line and our text under the same lock, so neither cuts the other. Immediate
 * logging: nothing to wait for.
 */
void rpmsg_glue_log_flush(void)
{
#ifdef CONFIG_LOG_MODE_DEFERRED
	for (int i = 0; i < 250; i++) {
		bool pending = log_data_pending();
#if defined(CONFIG_SHELL_LOG_BACKEND) && defined(CONFIG_SHELL_BACKEND_SERIAL)
		const struct shell *sh = shell_backend_uart_get_ptr();

		if (sh != NULL && sh->ctx->state == SHELL_STATE_ACTIVE) {
			pending = pending || mpsc_pbuf_is_pending(sh->log_backend->mpsc_buffer);
		}
#endif
		if (!pending) {
			return;
		}
		k_msleep(2);
	}
#endif
}

/* ---- shell command -------------------------------------------------------------- */

#define RPMSG_GLUE_STATUS_HELP "Usage: rpmsg_ivshmem status (peer ids, link, session, counters)"

#if defined(CONFIG_RPMSG_IVSHMEM_SHELL) && defined(CONFIG_RPMSG_IVSHMEM_REMOTE)
/* Rust: zephyr_glue::app::remote_status. The remote has no send or bench: those are
 * the host's commands.
 */
extern int rpmsg_glue_shell_remote_status(const struct shell *sh, size_t argc, char **argv);

SHELL_STATIC_SUBCMD_SET_CREATE(rpmsg_ivshmem_cmds,
	SHELL_CMD_ARG(status, NULL, RPMSG_GLUE_STATUS_HELP, rpmsg_glue_shell_remote_status, 1, 0),
	SHELL_SUBCMD_SET_END);

SHELL_CMD_REGISTER(rpmsg_ivshmem, &rpmsg_ivshmem_cmds, "RPMsg over IVSHMEM", NULL);
#elif defined(CONFIG_RPMSG_IVSHMEM_SHELL)
/* Rust: zephyr_glue::app::commands (the host application's command handlers). */
extern int rpmsg_glue_shell_send(const struct shell *sh, size_t argc, char **argv);
extern int rpmsg_glue_shell_status(const struct shell *sh, size_t argc, char **argv);
#ifdef CONFIG_RPMSG_IVSHMEM_BENCH
extern int rpmsg_glue_shell_bench(const struct shell *sh, size_t argc, char **argv);
extern int rpmsg_glue_shell_doorbell(const struct shell *sh, size_t argc, char **argv);
#endif

/* mandatory = 3 ("send", <string>, <count>), optional = 0: on any other count
 * the shell prints "send: wrong parameter count" and then this help as
 * "send - Usage: rpmsg_ivshmem send <string> <number of messages>".
 */
SHELL_STATIC_SUBCMD_SET_CREATE(rpmsg_ivshmem_cmds,
	SHELL_CMD_ARG(send, NULL,
		      "Usage: rpmsg_ivshmem send <string> <number of messages>",
		      rpmsg_glue_shell_send, 3, 0),
#ifdef CONFIG_RPMSG_IVSHMEM_BENCH
	/* mandatory = 1 ("bench"), optional = 2 (payload, count). */
	SHELL_CMD_ARG(bench, NULL,
		      "Usage: rpmsg_ivshmem bench [payload bytes 0-496, default 496] "
		      "[round trips 1-2000, default 1000]",
		      rpmsg_glue_shell_bench, 1, 2),
	/* mandatory = 1 ("doorbell"), optional = 1 (count). */
	SHELL_CMD_ARG(doorbell, NULL,
		      "Usage: rpmsg_ivshmem doorbell [round trips 1-2000, default 1000] "
		      "(bare doorbell ping-pong on vector 1, no RPMsg)",
		      rpmsg_glue_shell_doorbell, 1, 1),
#endif
	SHELL_CMD_ARG(status, NULL, RPMSG_GLUE_STATUS_HELP, rpmsg_glue_shell_status, 1, 0),
	SHELL_SUBCMD_SET_END);

SHELL_CMD_REGISTER(rpmsg_ivshmem, &rpmsg_ivshmem_cmds, "RPMsg over IVSHMEM", NULL);
#endif

/* ---- receive thread (entry in Rust) -------------------------------------------- */

/* Rust: defined by the image crate (host/src/lib.rs, remote/src/lib.rs), which calls its
 * application's receive loop. */
extern void rpmsg_glue_rx_thread_main(void);

static void rpmsg_glue_rx_entry(void *p1, void *p2, void *p3)
{
	ARG_UNUSED(p1);
	ARG_UNUSED(p2);
	ARG_UNUSED(p3);
	rpmsg_glue_rx_thread_main();
}

/* Created at boot but not started (delay SYS_FOREVER_MS). */
K_THREAD_DEFINE(rpmsg_glue_rx_tid, CONFIG_RPMSG_IVSHMEM_RX_THREAD_STACK_SIZE,
		rpmsg_glue_rx_entry, NULL, NULL, NULL,
		CONFIG_RPMSG_IVSHMEM_RX_THREAD_PRIORITY, 0, SYS_FOREVER_MS);

void rpmsg_glue_rx_thread_start(void)
{
	k_thread_name_set(rpmsg_glue_rx_tid, "rpmsg_rx");
	k_thread_start(rpmsg_glue_rx_tid);
}
