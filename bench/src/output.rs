//! The summary for people (stdout) and the checks against the targets from the issue.

use crate::report::{Check, Summary};

pub(crate) fn check(name: &str, target: &str, value: String, pass: bool) -> Check {
    Check {
        name: name.into(),
        target: target.into(),
        value,
        pass,
    }
}

/// The targets from the issue that apply to `s`.
pub(crate) fn checks(s: &Summary) -> Vec<Check> {
    let t = &s.throughput;
    let i = &s.integrity;
    let mut c = vec![
        check(
            "oversell",
            "0 units",
            format!("{} units", i.oversell_units),
            i.oversell_units == 0 && i.reserved_over_quantity == 0,
        ),
        check(
            "unexpected answers",
            "none (only 202/409)",
            format!("{:?}", t.other_statuses),
            t.other_statuses.is_empty(),
        ),
        check(
            "accepted jobs that did not succeed",
            "0",
            format!("{:?}", t.not_completed),
            t.not_completed.is_empty(),
        ),
    ];
    if s.scenario == "hot" {
        let units = s.config.units_per_listing;
        let expected = units.min(s.config.buyers as i64);
        c.push(check(
            "drain",
            "< 0.5 s",
            format!("{:.3} s", t.drain_s),
            t.drain_s < 0.5,
        ));
        c.push(check(
            "orders",
            &format!("exactly {expected}"),
            i.orders.to_string(),
            i.orders == expected,
        ));
        let p99 = s.latency_ms.checkout_409.p99_ms;
        c.push(check(
            "409 latency p99",
            "< 150 ms",
            format!("{p99:.2} ms"),
            p99 < 150.0,
        ));
    } else {
        c.push(check(
            "completed checkouts/s",
            ">= 1500/s",
            format!("{:.0}/s", t.completed_per_s),
            t.completed_per_s >= 1500.0,
        ));
    }
    let stall = s.timeline.longest_stall_ms;
    c.push(check(
        "longest stall (jobs queued, none finishing)",
        "< 1000 ms",
        format!("{stall:.0} ms"),
        stall < 1000.0,
    ));
    let cpu = s.cpu_per_checkout.server_total_ms;
    c.push(check(
        "server CPU per completed checkout",
        "<= 1.5 ms",
        format!("{cpu:.2} ms"),
        cpu <= 1.5 && t.completed > 0,
    ));
    let pickup = s.server_side_jobs.pickup_to_order_ms.p50_ms;
    c.push(check(
        "job pickup p50 (order created − job created)",
        "< 5 ms",
        format!("{pickup:.2} ms"),
        pickup < 5.0,
    ));
    for (name, m, max) in [
        ("api", &s.memory.api, 64.0),
        ("worker", &s.memory.worker, 40.0),
    ] {
        c.push(check(
            &format!("{name} peak RSS"),
            &format!("< {max:.0} MiB"),
            format!("{:.1} MiB", m.peak_rss_mib),
            m.peak_rss_mib < max,
        ));
    }
    c
}

/// Prints the human-readable summary.
pub(crate) fn print(s: &Summary) {
    let t = &s.throughput;
    let l = &s.latency_ms;
    let j = &s.server_side_jobs;
    let i = &s.integrity;
    let cpu = &s.cpu_s;
    let per = &s.cpu_per_checkout;
    println!(
        "=== {} ({} buyers, {} listing(s) x {} units, concurrency {}) ===",
        s.scenario,
        s.config.buyers,
        s.config.listings,
        s.config.units_per_listing,
        s.config
            .concurrency
            .map_or("all".to_string(), |c| c.to_string())
    );
    println!(
        "setup {:.1} s; warm-up {}/{} checkouts in {:.2} s",
        s.setup_s, s.warmup.succeeded, s.warmup.checkouts, s.warmup.wait_s
    );
    println!(
        "checkouts: {} sent, 202 x{}, 409 x{}, other {:?}; refusals {:?}",
        t.checkout_requests, t.accepted_202, t.out_of_stock_409, t.other_statuses, t.refusals
    );
    println!(
        "all answered in {:.3} s ({:.0} checkout req/s); drained in {:.3} s; {} HTTP requests ({:.0}/s)",
        t.all_answered_s,
        t.checkout_requests_per_s,
        t.drain_s,
        t.http_requests,
        t.http_requests_per_s
    );
    println!(
        "completed {} in {:.3} s = {:.0} checkouts/s ({:.0}/s from first to last success); not completed {:?}; longest stall {:.0} ms",
        t.completed,
        t.completed_window_s,
        t.completed_per_s,
        t.completed_steady_per_s,
        t.not_completed,
        s.timeline.longest_stall_ms
    );
    println!("latency  checkout all  {}", l.checkout_all.short());
    println!("         checkout 202  {}", l.checkout_202.short());
    println!("         checkout 409  {}", l.checkout_409.short());
    println!("         e2e succeeded {}", l.end_to_end_succeeded.short());
    if l.end_to_end_failed.count > 0 {
        println!("         e2e failed    {}", l.end_to_end_failed.short());
    }
    println!("server   pickup→order  {}", j.pickup_to_order_ms.short());
    println!("         order→done    {}", j.order_to_finished_ms.short());
    println!(
        "         created→done  {}",
        j.created_to_finished_ms.short()
    );
    println!(
        "jobs {:?} errors {:?} retried {}",
        j.by_status, j.errors, j.retried
    );
    println!(
        "stock: {} units, {} reserved, {} orders holding {} units, oversell {}, reserved>quantity {}, reserved≠ordered {}, gate drift {} (missing counters {})",
        i.units,
        i.reserved,
        i.orders,
        i.ordered_units,
        i.oversell_units,
        i.reserved_over_quantity,
        i.reserved_mismatch,
        i.gate_drift_units,
        i.gate_counters_missing
    );
    println!(
        "cpu s: api {:.2}  worker {:.2}  postgres {:.2} (this db {:.2})  redis {:.2}  = server {:.2}; bench {:.2}; machine busy {:.2} s ({:.2} cores)",
        cpu.api_s,
        cpu.worker_s,
        cpu.postgres_s,
        cpu.postgres_this_db_s,
        cpu.redis_s,
        cpu.server_total_s,
        cpu.bench_s,
        cpu.machine_busy_s,
        cpu.machine_busy_cores
    );
    println!(
        "cpu per completed checkout: {:.3} ms (api {:.3}, worker {:.3}, postgres {:.3}, redis {:.3}); per request {:.3} ms",
        per.server_total_ms,
        per.api_ms,
        per.worker_ms,
        per.postgres_ms,
        per.redis_ms,
        per.server_total_per_request_ms
    );
    let pg = &s.postgres_work;
    println!(
        "postgres (cluster-wide): {} write transactions ({:.2} per checkout), {:.0} KiB WAL ({:.0} B per checkout)",
        pg.write_transactions,
        pg.write_transactions_per_checkout,
        pg.wal_bytes / 1024.0,
        pg.wal_bytes_per_checkout
    );
    let m = &s.memory;
    println!(
        "memory MiB: api peak {:.1} (rss {:.1}; before the phase peak {:.1}, rss {:.1}), worker peak {:.1} (rss {:.1}; before {:.1}, {:.1})",
        m.api.peak_rss_mib,
        m.api.rss_mib,
        m.api_before.peak_rss_mib,
        m.api_before.rss_mib,
        m.worker.peak_rss_mib,
        m.worker.rss_mib,
        m.worker_before.peak_rss_mib,
        m.worker_before.rss_mib
    );
    if cpu.other_processes_s > 0.1 * cpu.machine_busy_s.max(0.1) {
        println!(
            "WARNING: other processes used {:.2} CPU s during the phase (machine busy {:.2} s): the machine was shared, figures are noisy",
            cpu.other_processes_s, cpu.machine_busy_s
        );
    }
    if cpu.postgres_s - cpu.postgres_this_db_s > 0.25 * cpu.postgres_s.max(0.1) {
        println!(
            "WARNING: PostgreSQL spent {:.2} CPU s outside the servers' database (other databases or background work)",
            cpu.postgres_s - cpu.postgres_this_db_s
        );
    }
    for u in &s.unexpected {
        println!("unexpected: {u}");
    }
    for c in &s.checks {
        let mark = if c.pass { "PASS" } else { "FAIL" };
        println!("  [{mark}] {}: {} (target {})", c.name, c.value, c.target);
    }
}
