//! The node's table of live processes: pids made and published on many
//! threads at once are distinct, found by pid while they live, and never
//! found (nor handed out again) once they have ended.

use std::collections::HashSet;
use std::thread;

use trellis::mailbox;
use trellis::process::{self, Pid};

const THREADS: usize = 4;

#[test]
fn pids_made_on_many_threads_at_once_are_distinct_and_increase_on_each_thread() {
    let per_thread: Vec<Vec<Pid>> = thread::scope(|scope| {
        let makers: Vec<_> = (0..THREADS)
            .map(|_| scope.spawn(|| (0..1000).map(|_| Pid::new()).collect::<Vec<_>>()))
            .collect();
        makers.into_iter().map(|m| m.join().unwrap()).collect()
    });
    for pids in &per_thread {
        assert!(pids.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(pids.iter().all(|pid| pid.is_local() && pid.id() != 0));
    }
    let all: HashSet<Pid> = per_thread.iter().flatten().copied().collect();
    assert_eq!(all.len(), THREADS * 1000);
}

#[test]
fn processes_published_on_many_threads_are_found_from_any_thread_until_they_end() {
    let mailboxes: Vec<Vec<mailbox::Mailbox<u32>>> = thread::scope(|scope| {
        let makers: Vec<_> = (0..THREADS)
            .map(|_| scope.spawn(|| (0..300).map(|_| mailbox::create::<u32>()).collect()))
            .collect();
        makers.into_iter().map(|m| m.join().unwrap()).collect()
    });
    let pids: Vec<Pid> = mailboxes.iter().flatten().map(|m| m.pid()).collect();
    assert_eq!(pids.iter().collect::<HashSet<_>>().len(), pids.len());
    let listed: HashSet<Pid> = process::list().into_iter().collect();
    for &pid in &pids {
        assert!(process::is_alive(pid));
        assert!(process::stats(pid).is_some());
        assert!(listed.contains(&pid));
    }
    // Ended on threads other than the ones that made them.
    thread::scope(|scope| {
        for batch in mailboxes.into_iter().rev() {
            scope.spawn(move || batch.into_iter().for_each(mailbox::destroy));
        }
    });
    let listed: HashSet<Pid> = process::list().into_iter().collect();
    for &pid in &pids {
        assert!(!process::is_alive(pid));
        assert!(process::stats(pid).is_none());
        assert!(!listed.contains(&pid));
    }
}

#[test]
fn a_pid_is_not_handed_out_again_after_its_process_ended() {
    let mut seen = HashSet::new();
    for _ in 0..5000 {
        let mailbox = mailbox::create::<()>();
        let pid = mailbox.pid();
        mailbox::destroy(mailbox);
        assert!(!process::is_alive(pid));
        assert!(seen.insert(pid), "{pid} handed out twice");
    }
}
