//! The RESP framing scanner and its refusals.
use super::*;
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Refuses payloads starting with `x`; records what it was asked.
#[derive(Default)]
struct Refuser {
    asked: Mutex<Vec<(String, Option<String>, usize)>>,
}

impl MessageSink for Refuser {
    fn screen(&self, channel: &[u8], pattern: Option<&[u8]>, head: &[u8], len: usize) -> bool {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        self.asked
            .lock()
            .unwrap()
            .push((s(channel), pattern.map(s), len));
        head.first() != Some(&b'x')
    }
    fn deliver(&self, _: &str, _: Option<&str>, _: &[u8]) {}
    fn connection_lost(&self) {}
}

fn msg(channel: &str, payload: &[u8]) -> Vec<u8> {
    let mut m = format!(
        "*3\r\n$7\r\nmessage\r\n${}\r\n{channel}\r\n${}\r\n",
        channel.len(),
        payload.len()
    )
    .into_bytes();
    m.extend_from_slice(payload);
    m.extend_from_slice(b"\r\n");
    m
}

fn pmsg(pattern: &str, channel: &str, payload: &[u8]) -> Vec<u8> {
    let mut m = format!(
        ">4\r\n$8\r\npmessage\r\n${}\r\n{pattern}\r\n${}\r\n{channel}\r\n${}\r\n",
        pattern.len(),
        channel.len(),
        payload.len()
    )
    .into_bytes();
    m.extend_from_slice(payload);
    m.extend_from_slice(b"\r\n");
    m
}

/// Feeds `input` through a screen in writes of `piece` bytes and reads it all.
async fn screened(input: &[u8], piece: usize, out_cap: usize) -> (Vec<u8>, Arc<Refuser>) {
    let (mut tx, rx) = tokio::io::duplex(4096);
    let sink = Arc::new(Refuser::default());
    let mut s = ScreenedStream::new(rx, sink.clone());
    let input = input.to_vec();
    let writer = tokio::spawn(async move {
        for c in input.chunks(piece.max(1)) {
            tx.write_all(c).await.unwrap();
        }
    });
    let mut got = Vec::new();
    let mut buf = vec![0u8; out_cap];
    loop {
        let n = s.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    writer.await.unwrap();
    (got, sink)
}

#[tokio::test]
async fn refused_messages_vanish_and_the_rest_passes_unchanged() {
    let big_bad = vec![b'x'; 300_000];
    let mut big_good = vec![b'g'; 200_000];
    big_good[0] = b'o';
    let frames: Vec<Vec<u8>> = vec![
        b"*3\r\n$9\r\nsubscribe\r\n$3\r\nabc\r\n:1\r\n".to_vec(),
        msg("a", b"ok-1"),
        msg("a", b"x-garbage"),
        pmsg("p*", "pc", b"ok-2"),
        msg("b", &big_bad),
        msg("c", &big_good),
        pmsg("p*", "pd", b"xx"),
        b"*2\r\n$4\r\npong\r\n$0\r\n\r\n".to_vec(),
        b"%1\r\n+server\r\n+redis\r\n".to_vec(),
        msg("d", b""),
        msg("e", b"ok-3"),
    ];
    let input: Vec<u8> = frames.concat();
    let want: Vec<u8> = frames
        .iter()
        .filter(|f| !f.windows(3).any(|w| w == b"\nx-" || w == b"\nxx"))
        .cloned()
        .collect::<Vec<_>>()
        .concat();
    for (piece, cap) in [
        (1, 7),
        (3, 4096),
        (1000, 100),
        (100_000, 65_536),
        (7, 1 << 20),
    ] {
        let (got, sink) = screened(&input, piece, cap).await;
        assert!(
            got == want,
            "piece {piece}, out {cap}: {} vs {} bytes",
            got.len(),
            want.len()
        );
        let asked = sink.asked.lock().unwrap();
        assert_eq!(asked.len(), 8, "{asked:?}");
        assert_eq!(asked[2], ("pc".into(), Some("p*".into()), 4));
        assert_eq!(asked[3], ("b".into(), None, 300_000));
    }
}

#[tokio::test]
async fn unknown_bytes_turn_the_screen_off_and_pass() {
    let mut input = b"?what\r\n".to_vec();
    input.extend(msg("a", b"x-passes-now"));
    let (got, sink) = screened(&input, 5, 64).await;
    assert_eq!(got, input);
    assert!(sink.asked.lock().unwrap().is_empty());
}

#[test]
fn scan_waits_for_the_head() {
    let sink = Refuser::default();
    let m = msg("chan", &[b'y'; 1000]);
    // Up to the payload's first HEAD bytes: more needed.
    let payload_at = m.len() - 1002;
    assert_eq!(scan(&m[..payload_at + HEAD - 1], &sink), Scan::More);
    assert_eq!(scan(&m[..payload_at + HEAD], &sink), Scan::Pass(m.len()));
    let bad = msg("chan", &[b'x'; 10]);
    assert_eq!(scan(&bad, &sink), Scan::Skip(bad.len()));
    assert_eq!(scan(b"+OK\r\n", &sink), Scan::Pass(5));
    assert_eq!(scan(b"$?\r\n", &sink), Scan::Unknown);
}
