#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `restore-choose`: the listing a person sees, and the prompt.

mod common;

use backup::{CHOICES, Choice, choose, list_local, pick};
use common::{sample_dump, write_archive_file};

fn rows(dir: &std::path::Path) -> Vec<Choice> {
    list_local(dir)
        .unwrap()
        .iter()
        .take(CHOICES)
        .map(Choice::local)
        .collect()
}

fn folder_with_seven() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for day in 1..=7 {
        write_archive_file(
            dir.path(),
            &format!("abs-backup-202412{day:02}T020000.000Z.jsonl.zst"),
            &sample_dump(),
        );
    }
    std::fs::write(
        dir.path().join("abs-backup-20241209T020000.000Z.jsonl.zst"),
        "damaged",
    )
    .unwrap();
    dir
}

#[test]
fn the_listing_shows_the_five_newest_with_size_and_counts() {
    let dir = folder_with_seven();
    let rows = rows(dir.path());
    assert_eq!(rows.len(), 5);
    let mut out = Vec::new();
    assert_eq!(choose(&rows, &b"q\n"[..], &mut out).unwrap(), None);
    let out = String::from_utf8(out).unwrap();
    let size = std::fs::metadata(dir.path().join("abs-backup-20241207T020000.000Z.jsonl.zst"))
        .unwrap()
        .len();
    let size = backup::human_size(size);
    let expected_first = format!(
        " 1) 2024-12-09 02:00:00 UTC  backup  {:>9}  abs-backup-20241209T020000.000Z.jsonl.zst\n",
        "7 B"
    );
    assert!(out.starts_with(&expected_first), "{out}");
    assert!(
        out.contains("    manifest unreadable: "),
        "a damaged file is shown, not hidden: {out}"
    );
    assert!(
        out.contains(&format!(
            " 2) 2024-12-07 02:00:00 UTC  backup  {size:>9}  abs-backup-20241207T020000.000Z.jsonl.zst\n    patrons 2, fines 3, alma_transactions 4, account_lines 2, bursar_transactions 4, exports 1, payments 2, jobs 2\n"
        )),
        "{out}"
    );
    assert!(out.contains(" 5) 2024-12-04 02:00:00 UTC"), "{out}");
    assert!(!out.contains("2024-12-03"), "{out}");
    assert!(
        out.ends_with("Restore which backup? Enter 1-5, or q to cancel: "),
        "{out}"
    );
}

#[test]
fn the_prompt_asks_again_until_it_gets_a_number_in_range() {
    let dir = folder_with_seven();
    let rows = rows(dir.path());
    let mut out = Vec::new();
    let chosen = choose(&rows, &b"\nsix\n0\n6\n 3 \n"[..], &mut out).unwrap();
    assert_eq!(chosen, Some(2));
    let out = String::from_utf8(out).unwrap();
    for bad in ["\"\"", "\"six\"", "\"0\"", "\"6\""] {
        assert!(
            out.contains(&format!("{bad} is not a number from 1 to 5.")),
            "{bad}: {out}"
        );
    }
    assert_eq!(out.matches("Restore which backup?").count(), 5);
}

#[test]
fn the_end_of_input_cancels() {
    let dir = folder_with_seven();
    let rows = rows(dir.path());
    assert_eq!(choose(&rows, &b"x\n"[..], Vec::new()).unwrap(), None);
    assert_eq!(choose(&[], &b"1\n"[..], Vec::new()).unwrap(), None);
}

#[test]
fn pick_checks_the_range() {
    assert_eq!(pick(1, 5).unwrap(), 0);
    assert_eq!(pick(5, 5).unwrap(), 4);
    let error = pick(6, 5).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("no backup number 6: the listing has 5"),
        "{error}"
    );
    assert!(pick(0, 5).is_err());
}
