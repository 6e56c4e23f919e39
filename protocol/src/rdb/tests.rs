//! Payload writer/reader tests: round trips, Redis 7.0.15 DUMP fixtures,
//! hand-made Codis 3.2 (v7) encodings, footer checks and hostile bodies.

use proptest::prelude::*;

use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A payload around `body` (type byte included) with a correct footer.
fn with_footer(body: &[u8], ver: u16) -> Vec<u8> {
    let mut p = body.to_vec();
    p.extend_from_slice(&ver.to_le_bytes());
    let c = crc64(&p);
    p.extend_from_slice(&c.to_le_bytes());
    p
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn list_payload(items: &[Vec<u8>]) -> Vec<u8> {
    let mut w = PayloadWriter::list(items.len());
    for i in items {
        w.elem(i);
    }
    w.finish()
}

#[test]
fn roundtrip_every_type() {
    let p = PayloadWriter::string(b"").finish();
    assert_eq!(decode(&p), Ok(Value::Str(vec![])));
    let bin: Vec<u8> = (0..=255).collect();
    let p = PayloadWriter::string(&bin).finish();
    assert_eq!(decode(&p), Ok(Value::Str(bin.clone())));

    let items = vec![b(""), bin.clone(), b("x"), b("12")];
    assert_eq!(
        decode(&list_payload(&items)),
        Ok(Value::List(items.clone()))
    );

    let mut w = PayloadWriter::set(3);
    for m in [&b""[..], &bin, b"7"] {
        w.elem(m);
    }
    assert_eq!(
        decode(&w.finish()),
        Ok(Value::Set(vec![b(""), bin.clone(), b("7")]))
    );

    let mut w = PayloadWriter::hash(2);
    w.pair(b"", b"");
    w.pair(&bin, b"v");
    assert_eq!(
        decode(&w.finish()),
        Ok(Value::Hash(vec![(b(""), b("")), (bin.clone(), b("v"))]))
    );

    let scores = [
        0.0,
        -0.0,
        1.5,
        -2.25,
        0.1,
        1e300,
        -1e-300,
        5e-324,
        f64::MAX,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
    ];
    let mut w = PayloadWriter::zset(scores.len());
    for (i, s) in scores.iter().enumerate() {
        w.zelem(format!("m{i}").as_bytes(), *s);
    }
    let Ok(Value::ZSet(z)) = decode(&w.finish()) else {
        panic!("zset")
    };
    assert_eq!(z.len(), scores.len());
    for ((m, got), (i, want)) in z.iter().zip(scores.iter().enumerate()) {
        assert_eq!(m, format!("m{i}").as_bytes());
        if want.is_nan() {
            assert!(got.is_nan());
        } else {
            assert_eq!(got.to_bits(), want.to_bits(), "score {want}");
        }
    }
}

#[test]
fn big_lengths_use_32bit_form() {
    let n = (1 << 14) + 5;
    let items: Vec<Vec<u8>> = (0..n).map(|i| i.to_string().into_bytes()).collect();
    let p = list_payload(&items);
    assert_eq!(&p[..6], &[1, 0x80, 0, 0, 0x40, 5]);
    assert_eq!(decode(&p), Ok(Value::List(items)));
    let big = vec![b'z'; 70_000];
    let p = PayloadWriter::string(&big).finish();
    assert_eq!(decode(&p), Ok(Value::Str(big)));
}

#[test]
fn redis_7_0_fixtures() {
    let cases: Vec<(&str, Value)> = vec![
        ("00c139300a009d94ea2793fc08b9", Value::Str(b("12345"))),
        (
            "000b68656c6c6f20776f726c640a000bfc49b9a6c7a034",
            Value::Str(b("hello world")),
        ),
        (
            "00c30e4064017878e027000079e026000179790a00d587f40258e2d1c5",
            Value::Str([vec![b'x'; 50], vec![b'y'; 50]].concat()),
        ),
        (
            "00c30d419002616261e0ff01e07a010161620a003f03619433dd8d9a",
            Value::Str(b("ab").repeat(200)),
        ),
        (
            "120102252500000008008161020101dffb02c12c02f270110104f26079fe048568656c6c6f068001ff0a00ff6c7762a0f5090a",
            Value::List(
                ["a", "1", "-5", "300", "70000", "-100000", "hello", ""]
                    .iter()
                    .map(|s| b(s))
                    .collect(),
            ),
        ),
        (
            "10151500000004008266310382763103826632030201ff0a005c5ea813feec1ff5",
            Value::Hash(vec![(b("f1"), b("v1")), (b("f2"), b("2"))]),
        ),
        (
            "0bc32028040800000004200301feff80000001200b4000017011a00902f2052a200900000a00c4825d4352a8d5d2",
            Value::Set(
                ["-2", "1", "70000", "5000000000"]
                    .iter()
                    .map(|s| b(s))
                    .collect(),
            ),
        ),
        (
            "0202016201610a0075d99d835ef85f65",
            Value::Set(vec![b("b"), b("a")]),
        ),
        (
            "1125250000000800816202842d696e660581610283312e3504816402030181630283696e6604ff0a0058f83adf39ebbc2f",
            Value::ZSet(vec![
                (b("b"), f64::NEG_INFINITY),
                (b("a"), 1.5),
                (b("d"), 3.0),
                (b("c"), f64::INFINITY),
            ]),
        ),
    ];
    for (h, want) in cases {
        let p = hex(h);
        assert_eq!(verify(&p), Ok(10), "{h}");
        assert_eq!(decode(&p), Ok(want), "{h}");
    }
}

/// A ziplist (Redis 3.2) of raw entries (`prevlen` + encoding + data each).
fn ziplist(entries: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut prev = 0usize;
    let mut tail = 10;
    for e in entries {
        tail = 10 + body.len();
        body.push(prev as u8);
        body.extend_from_slice(e);
        prev = e.len() + 1;
    }
    let mut z = Vec::new();
    z.extend_from_slice(&((10 + body.len() + 1) as u32).to_le_bytes());
    z.extend_from_slice(&(tail as u32).to_le_bytes());
    z.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    z.extend_from_slice(&body);
    z.push(0xff);
    z
}

fn blob(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    write_blob(&mut v, b);
    v
}

#[test]
fn codis_3_2_encodings() {
    // "a", 7 (immediate), -300 (int16), "hello".
    let zl = ziplist(&[b"\x01a", b"\xf8", b"\xc0\xd4\xfe", b"\x05hello"]);
    let want = Value::List(vec![b("a"), b("7"), b("-300"), b("hello")]);
    let p = with_footer(&[&[types::LIST_ZIPLIST][..], &blob(&zl)].concat(), 7);
    assert_eq!(decode(&p), Ok(want.clone()));
    // quicklist v1: two ziplist nodes.
    let zl2 = ziplist(&[b"\x01b"]);
    let body = [&[types::LIST_QUICKLIST, 2][..], &blob(&zl), &blob(&zl2)].concat();
    let Value::List(mut items) = want.clone() else {
        unreachable!()
    };
    items.push(b("b"));
    assert_eq!(decode(&with_footer(&body, 7)), Ok(Value::List(items)));
    // ziplist zset: member, score pairs.
    let zl = ziplist(&[b"\x01a", b"\x031.5", b"\x01b", b"\xf3"]);
    let p = with_footer(&[&[types::ZSET_ZIPLIST][..], &blob(&zl)].concat(), 7);
    assert_eq!(
        decode(&p),
        Ok(Value::ZSet(vec![(b("a"), 1.5), (b("b"), 2.0)]))
    );
    // ziplist hash.
    let zl = ziplist(&[b"\x01f", b"\x01v", b"\x01g", b"\xfe\x7f"]);
    let p = with_footer(&[&[types::HASH_ZIPLIST][..], &blob(&zl)].concat(), 7);
    assert_eq!(
        decode(&p),
        Ok(Value::Hash(vec![(b("f"), b("v")), (b("g"), b("127"))]))
    );
    // type 3 zset as codis writes it.
    let p = with_footer(b"\x03\x02\x01a\x031.5\x01b\xfe", 7);
    assert_eq!(
        decode(&p),
        Ok(Value::ZSet(vec![(b("a"), 1.5), (b("b"), f64::INFINITY)]))
    );
}

#[test]
fn footer_checks() {
    let p = PayloadWriter::string(b"a").finish();
    assert_eq!(verify(&p), Ok(7));
    assert_eq!(verify(&p[..9]), Err(PayloadError::VersionOrChecksum));
    assert_eq!(verify(&[]), Err(PayloadError::VersionOrChecksum));
    let mut bad = p.clone();
    bad[2] ^= 1;
    assert_eq!(decode(&bad), Err(PayloadError::VersionOrChecksum));
    assert_eq!(
        decode(&with_footer(b"\x00\x01a", 11)),
        Err(PayloadError::VersionOrChecksum)
    );
    assert_eq!(
        decode(&with_footer(b"\x00\x01a", 0)),
        Ok(Value::Str(b("a")))
    );
    assert_eq!(
        decode(&with_footer(b"\x00\x01a", 10)),
        Ok(Value::Str(b("a")))
    );
    // A footer alone (10 bytes, no type byte) passes verify but is no value.
    let empty = with_footer(b"", 7);
    assert_eq!(verify(&empty), Ok(7));
    assert_eq!(decode(&empty), Err(PayloadError::BadFormat));
}

#[test]
fn hostile_bodies() {
    let bad = |body: &[u8]| {
        let r = decode(&with_footer(body, 7));
        assert_eq!(r, Err(PayloadError::BadFormat), "{body:02x?}");
    };
    // List / set / hash / zset counts of 2^40 with tiny bodies.
    for ty in [1u8, 2, 3, 4, 5, 14, 18] {
        bad(&[ty, 0x81, 0, 0, 1, 0, 0, 0, 0, 0, 1, b'a']);
        bad(&[ty, 0x80, 0xff, 0xff, 0xff, 0xff, 1, b'a']);
    }
    // String of length 2^62.
    bad(&[0, 0x81, 0x40, 0, 0, 0, 0, 0, 0, 0, b'a']);
    // LZF string announcing 2^60 bytes out of 3.
    bad(&[0, 0xc3, 3, 0x81, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, b'a', b'b']);
    // LZF with an expansion beyond what LZF can do.
    bad(&[0, 0xc3, 2, 0x80, 0, 1, 0, 0, 1, b'a']);
    // LZF with garbage data (right sizes).
    bad(&[0, 0xc3, 2, 10, 0xff, 0xff]);
    // Unknown length prefix, unknown string encoding.
    bad(&[0, 0x82]);
    bad(&[0, 0xc4]);
    // Trailing bytes, missing bytes.
    bad(b"\x00\x01a\x00");
    bad(b"\x00\x02a");
    bad(b"\x01\x02\x01a");
    // Streams, modules, listpack sets, field-TTL hashes, unknown types.
    for ty in [6u8, 7, 8, 15, 19, 20, 21, 22, 23, 24, 25, 26, 200, 255] {
        bad(&[ty, 0]);
        bad(&[ty, 1, 0]);
    }
    // Empty collections in every encoding.
    bad(b"\x01\x00");
    bad(b"\x02\x00");
    bad(b"\x03\x00");
    bad(b"\x04\x00");
    bad(b"\x05\x00");
    bad(b"\x12\x00");
    bad(&[&[types::LIST_ZIPLIST][..], &blob(&ziplist(&[]))].concat());
    // Quicklist 2 with an unknown container kind.
    bad(b"\x12\x01\x03\x01a");
    // Ziplist announcing 65535 entries, holding one.
    let mut zl = ziplist(&[b"\x01a"]);
    zl[8] = 0xff;
    zl[9] = 0xff;
    bad(&[&[types::LIST_ZIPLIST][..], &blob(&zl)].concat());
    // Listpack whose header size disagrees with the blob.
    bad(&[
        &[types::HASH_LISTPACK][..],
        &blob(&[0xff, 0, 0, 0, 2, 0, 0x81, b'a', 2, 0xff]),
    ]
    .concat());
    // Intset with an impossible width / a count past its bytes.
    bad(&[
        &[types::SET_INTSET][..],
        &blob(&[3, 0, 0, 0, 1, 0, 0, 0, 1, 2, 3]),
    ]
    .concat());
    bad(&[
        &[types::SET_INTSET][..],
        &blob(&[2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 0]),
    ]
    .concat());
    // Plain hash repeating a field; zset score that is not a number.
    bad(b"\x04\x02\x01a\x01x\x01a\x01y");
    bad(b"\x03\x01\x01a\x03abc");
}

fn any_type() -> impl Strategy<Value = u8> {
    prop_oneof![
        Just(0u8),
        Just(1),
        Just(2),
        Just(3),
        Just(4),
        Just(5),
        Just(9),
        Just(10),
        Just(11),
        Just(12),
        Just(13),
        Just(14),
        Just(16),
        Just(17),
        Just(18),
        any::<u8>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any body with a valid CRC: an answer (value or error), no panic, no
    /// hang, no huge allocation (the test process would abort).
    #[test]
    fn random_bodies_never_panic(ty in any_type(), body in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut p = vec![ty];
        p.extend_from_slice(&body);
        let _ = decode(&with_footer(&p, 7));
    }

    /// Mutations of well-formed payloads reach deeper into the decoders.
    #[test]
    fn mutated_payloads_never_panic(
        items in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..8), 1..6),
        kind in 0u8..5,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let mut p = match kind {
            0 => list_payload(&items),
            1 => {
                let mut w = PayloadWriter::hash(items.len());
                for i in &items { w.pair(i, i); }
                w.finish()
            }
            2 => {
                let mut w = PayloadWriter::zset(items.len());
                for (n, i) in items.iter().enumerate() { w.zelem(i, n as f64 / 3.0); }
                w.finish()
            }
            3 => hex("120102252500000008008161020101dffb02c12c02f270110104f26079fe048568656c6c6f068001ff0a00ff6c7762a0f5090a"),
            _ => hex("1125250000000800816202842d696e660581610283312e3504816402030181630283696e6604ff0a0058f83adf39ebbc2f"),
        };
        let n = p.len() - 10;
        for (at, x) in flips {
            p[at % n] ^= x;
        }
        p.truncate(n);
        let _ = decode(&with_footer(&p[..], 7));
    }

    #[test]
    fn roundtrip_lists(items in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..50)) {
        prop_assert_eq!(decode(&list_payload(&items)), Ok(Value::List(items)));
    }

    #[test]
    fn roundtrip_zset_scores(scores in proptest::collection::vec(any::<f64>(), 1..30)) {
        let mut w = PayloadWriter::zset(scores.len());
        for (i, s) in scores.iter().enumerate() {
            w.zelem(&i.to_le_bytes(), *s);
        }
        let Ok(Value::ZSet(z)) = decode(&w.finish()) else { panic!("zset") };
        for ((_, got), want) in z.iter().zip(&scores) {
            prop_assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()));
        }
    }
}

/// The value alone decodes like the payload around it; trailing bytes or a
/// missing body are bad format.
#[test]
fn value_without_footer() {
    let mut w = PayloadWriter::zset(2);
    w.zelem(b"a", 1.0);
    w.zelem(b"b", f64::INFINITY);
    let value = w.finish_value();
    let p = with_footer(&value, WRITE_VERSION);
    assert_eq!(decode_value(&value), decode(&p));
    assert!(decode_value(&value).is_ok());
    let mut extra = value.clone();
    extra.push(0);
    assert_eq!(decode_value(&extra), Err(PayloadError::BadFormat));
    assert_eq!(decode_value(&value[..1]), Err(PayloadError::BadFormat));
    assert_eq!(decode_value(&[]), Err(PayloadError::BadFormat));
}
