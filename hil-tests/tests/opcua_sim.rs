//! The OPC UA machine tool simulator against a real async-opcua client over TCP on 127.0.0.1:
//! nodes found by browse path with namespaces resolved by URI, typed job-control calls,
//! counters watched by subscription, alarms as events, security and users, faults.

mod opcua_client;

use std::time::Duration;

use microfab_hil::opcua::{NamespaceOrder, NodeIdStyle};
use opcua::client::{EventCallback, IdentityToken};
use opcua::crypto::SecurityPolicy;
use opcua::types::{
    Argument, AttributeId, ByteString, DataTypeId, ExtensionObject, Identifier, LocalizedText,
    MessageSecurityMode, MonitoredItemCreateRequest, NodeId, QualifiedName, StatusCode,
    TimestampsToReturn, Variant,
};
use tokio::sync::mpsc;
use tokio::time::timeout;

use opcua_client::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_40501_tree_resolves_by_namespace_uri_in_either_order_and_node_id_kind() {
    let mut seen_indexes = Vec::new();
    for (order, style) in [
        (NamespaceOrder::Companion, NodeIdStyle::String),
        (NamespaceOrder::Reversed, NodeIdStyle::Numeric),
    ] {
        let (sim, pki) = start_sim(|args| {
            args.namespace_order = order;
            args.node_ids = style;
        })
        .await;
        let connection = connect(&sim, &pki).await;
        let session = &connection.session;
        let ns = connection.ns;
        seen_indexes.push(ns);
        let paths = Paths(ns);
        let (di, mt, machinery) = (ns.di, ns.machine_tool, ns.machinery);
        let machines = [QualifiedName::new(machinery, "Machines")];
        assert_eq!(
            resolve(session, &machines).await,
            Ok(NodeId::new(machinery, 1001u32)),
            "40001-1 gives the Machines folder a standard NodeId"
        );

        let manufacturer = resolve(
            session,
            &paths.machine(&[(di, "Identification"), (di, "Manufacturer")]),
        )
        .await
        .unwrap();
        assert_eq!(
            text(&read(session, &manufacturer).await),
            "microfab simulated machines"
        );
        let year = paths.machine(&[(di, "Identification"), (machinery, "YearOfConstruction")]);
        assert_eq!(
            read(session, &resolve(session, &year).await.unwrap()).await,
            Variant::UInt16(2026)
        );
        for path in [
            paths.machine(&[(di, "Identification"), (di, "SerialNumber")]),
            paths.machine(&[
                (mt, "Monitoring"),
                (mt, "MachineTool"),
                (mt, "OperationMode"),
            ]),
            paths.machine(&[
                (mt, "Monitoring"),
                (mt, "MachineTool"),
                (mt, "PowerOnDuration"),
            ]),
            paths.machine(&[
                (mt, "Monitoring"),
                (ns.instance, "Channel1"),
                (mt, "ChannelState"),
            ]),
            paths.machine(&[
                (mt, "Monitoring"),
                (ns.instance, "Channel1"),
                (mt, "FeedOverride"),
            ]),
            paths.machine(&[
                (mt, "Monitoring"),
                (ns.instance, "Spindle1"),
                (mt, "IsRotating"),
            ]),
            paths.machine(&[
                (mt, "Monitoring"),
                (ns.instance, "Spindle1"),
                (mt, "Override"),
            ]),
            paths.machine(&[(mt, "Production"), (mt, "ActiveProgram"), (mt, "Name")]),
            paths.machine(&[
                (mt, "Production"),
                (mt, "ActiveProgram"),
                (mt, "State"),
                (0, "CurrentState"),
            ]),
            paths.machine(&[(mt, "Notification"), (mt, "Messages")]),
            paths.machine(&[(ns.instance, "Programs"), (ns.instance, "BRACKET-5AX")]),
        ] {
            let node = resolve(session, &path)
                .await
                .unwrap_or_else(|status| panic!("{path:?}: {status}"));
            assert_eq!(node.namespace, ns.instance, "{path:?} is an instance node");
            match (style, &node.identifier) {
                (NodeIdStyle::String, Identifier::String(_))
                | (NodeIdStyle::Numeric, Identifier::Numeric(_)) => {}
                (_, other) => panic!("{style:?} NodeIds asked, got {other:?} for {path:?}"),
            }
        }
        // Names are qualified: the right name in the wrong namespace does not resolve.
        let wrong = paths.machine(&[(mt, "Identification"), (di, "Manufacturer")]);
        assert_eq!(resolve(session, &wrong).await, Err(StatusCode::BadNoMatch));
        let missing = paths.machine(&[(ns.instance, "Programs"), (ns.instance, "NO-SUCH-PROGRAM")]);
        assert_eq!(
            resolve(session, &missing).await,
            Err(StatusCode::BadNoMatch)
        );
        sim.stop().await;
    }
    assert_ne!(seen_indexes[0].di, seen_indexes[1].di, "{seen_indexes:?}");
    assert_ne!(seen_indexes[0].instance, seen_indexes[1].instance);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_and_start_takes_only_the_declared_argument_types() {
    let (sim, pki) = start_sim(|_| {}).await;
    let connection = connect(&sim, &pki).await;
    let session = &connection.session;
    let paths = Paths(connection.ns);

    let mut inputs_path = paths.plan();
    inputs_path.push(QualifiedName::new(connection.ns.instance, "StoreAndStart"));
    inputs_path.push(QualifiedName::new(0, "InputArguments"));
    let inputs = read(session, &resolve(session, &inputs_path).await.unwrap()).await;
    let Variant::Array(inputs) = inputs else {
        panic!("{inputs:?}")
    };
    let declared: Vec<(String, NodeId)> = inputs
        .values
        .iter()
        .map(|v| match v {
            Variant::ExtensionObject(o) => {
                let argument = o.inner_as::<Argument>().unwrap();
                (
                    argument.name.as_ref().to_string(),
                    argument.data_type.clone(),
                )
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        declared,
        [
            ("ProgramName".to_string(), DataTypeId::String.into()),
            ("RunsPlanned".to_string(), DataTypeId::UInt32.into())
        ]
    );

    let refused = [
        (
            vec!["BRACKET-5AX".into(), Variant::Int32(3)],
            StatusCode::BadTypeMismatch,
        ),
        (
            vec![Variant::UInt32(3), Variant::UInt32(3)],
            StatusCode::BadTypeMismatch,
        ),
        (vec!["BRACKET-5AX".into()], StatusCode::BadArgumentsMissing),
        (vec![], StatusCode::BadArgumentsMissing),
        (
            vec!["BRACKET-5AX".into(), Variant::UInt32(3), Variant::UInt32(1)],
            StatusCode::BadTooManyArguments,
        ),
        (
            vec!["NO-SUCH".into(), Variant::UInt32(3)],
            StatusCode::BadNotFound,
        ),
    ];
    for (args, status) in refused {
        let result = call(&connection, "StoreAndStart", args.clone()).await;
        assert_eq!(result.status_code, status, "{args:?}");
    }
    assert!(sim.jobs().is_empty(), "a refused call started nothing");

    let job = store_and_start(&connection, "BRACKET-5AX", 3).await;
    assert_eq!(job, "JOB-0001");
    let busy = call(
        &connection,
        "StoreAndStart",
        vec!["BRACKET-5AX".into(), 1u32.into()],
    )
    .await;
    assert_eq!(busy.status_code, StatusCode::BadInvalidState);
    let identifier = resolve(
        session,
        &paths.job(&job, &[(connection.ns.machine_tool, "Identifier")]),
    )
    .await
    .unwrap();
    assert_eq!(text(&read(session, &identifier).await), job);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribed_counters_reach_the_planned_runs_and_the_job_ends() {
    // 250 ms of wall time a run: the monitored items exist before the third run ends.
    let (sim, pki) = start_sim(|args| {
        args.scrap_rate = 0.3;
        args.seed = 11;
        args.time_scale = 4.0;
    })
    .await;
    let connection = connect(&sim, &pki).await;
    let session = &connection.session;
    let (mt, own) = (connection.ns.machine_tool, connection.ns.instance);
    let paths = Paths(connection.ns);

    let job = store_and_start(&connection, "BRACKET-5AX", 12).await;
    let mut nodes = Vec::new();
    for rest in [
        [(mt, "RunsCompleted")].as_slice(),
        &[(own, "PartsCompleted")],
        &[(own, "PartsGood")],
        &[(mt, "State"), (0, "CurrentState")],
    ] {
        nodes.push(resolve(session, &paths.job(&job, rest)).await.unwrap());
    }
    let mut changes = watch(session, &nodes).await;
    let mut runs_seen = Vec::new();
    let mut last = vec![Variant::Empty; nodes.len()];
    timeout(PATIENCE, async {
        while let Some((node, value)) = changes.recv().await {
            let index = nodes.iter().position(|n| *n == node).unwrap();
            if index == 0 {
                runs_seen.push(value.clone());
            }
            last[index] = value;
            if text(&last[3]) == "Ended" && last[0] == Variant::UInt32(12) {
                break;
            }
        }
    })
    .await
    .expect("the job ends with 12 runs");

    assert!(
        runs_seen.len() > 2,
        "RunsCompleted advanced in steps: {runs_seen:?}"
    );
    assert!(runs_seen.windows(2).all(|w| match (&w[0], &w[1]) {
        (Variant::UInt32(a), Variant::UInt32(b)) => a < b,
        _ => false,
    }));
    let completed = read(session, &nodes[1]).await;
    let good = read(session, &nodes[2]).await;
    assert_eq!(completed, Variant::UInt32(12));
    let machine = &sim.jobs()[0];
    assert_eq!(good, Variant::UInt32(machine.parts_good));
    let scrap = machine.parts_completed - machine.parts_good;
    assert!(
        scrap > 0 && machine.parts_good > 0,
        "30 % scrap: {machine:?}"
    );
    assert_eq!(machine.parts_good + scrap, machine.parts_completed);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_fault_mid_job_arrives_as_an_event_and_interrupts_the_job() {
    // 200 runs a second: several runs fall in one 20 ms tick, the alarm still strikes after run 2.
    let (sim, pki) = start_sim(|args| {
        args.faults = vec!["alarm:1021@runs:2".parse().unwrap()];
        args.time_scale = 200.0;
    })
    .await;
    let connection = connect(&sim, &pki).await;
    let session = &connection.session;
    let ns = connection.ns;
    let paths = Paths(ns);
    let messages = resolve(
        session,
        &paths.machine(&[
            (ns.machine_tool, "Notification"),
            (ns.machine_tool, "Messages"),
        ]),
    )
    .await
    .unwrap();

    let (sender, mut events) = mpsc::unbounded_channel();
    let subscription = session
        .create_subscription(
            Duration::from_millis(20),
            600,
            20,
            0,
            0,
            true,
            EventCallback::new(move |fields, _| {
                let _ = sender.send(fields.unwrap_or_default());
            }),
        )
        .await
        .unwrap();
    let mut item: MonitoredItemCreateRequest = messages.into();
    item.item_to_monitor.attribute_id = AttributeId::EventNotifier as u32;
    item.requested_parameters.queue_size = 10;
    item.requested_parameters.filter = ExtensionObject::from_message(event_filter(ns));
    let created = session
        .create_monitored_items(subscription, TimestampsToReturn::Neither, vec![item])
        .await
        .unwrap();
    assert!(created[0].result.status_code.is_good(), "{created:?}");

    let job = store_and_start(&connection, "BRACKET-5AX", 5).await;
    let fields = timeout(PATIENCE, events.recv()).await.unwrap().unwrap();
    assert_eq!(fields[0], Variant::UInt16(800), "severity: {fields:?}");
    assert!(text(&fields[1]).starts_with("Alarm 1021"), "{fields:?}");
    assert_eq!(text(&fields[2]), MACHINE);
    assert_eq!(text(&fields[3]), "ALM-1021");

    let state = resolve(
        session,
        &paths.job(&job, &[(ns.machine_tool, "State"), (0, "CurrentState")]),
    )
    .await
    .unwrap();
    assert_eq!(
        read(session, &state).await,
        Variant::from(LocalizedText::from("Interrupted"))
    );
    let runs = resolve(
        session,
        &paths.job(&job, &[(ns.machine_tool, "RunsCompleted")]),
    )
    .await
    .unwrap();
    let runs_at_alarm = read(session, &runs).await;
    assert_eq!(
        runs_at_alarm,
        Variant::UInt32(2),
        "the alarm struck after run 2"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        read(session, &runs).await,
        runs_at_alarm,
        "an interrupted job does not advance"
    );

    assert!(
        call(&connection, "Resume", vec![])
            .await
            .status_code
            .is_good()
    );
    wait_for_text(session, &state, "Ended").await;
    assert_eq!(read(session, &runs).await, Variant::UInt32(5));
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_sessions_with_a_password_work_and_a_wrong_password_is_refused() {
    let (sim, pki) = start_sim(|args| {
        args.users = vec![("operator".into(), "s3cret".into())];
        args.no_anonymous = true;
        args.trust_client_certs = true;
    })
    .await;
    let client_pki = pki.path().join("client");
    for policy in [
        SecurityPolicy::Basic256Sha256,
        SecurityPolicy::Aes256Sha256RsaPss,
    ] {
        let connection = connect_with(
            sim.endpoint(),
            &client_pki,
            (policy, MessageSecurityMode::SignAndEncrypt),
            IdentityToken::new_user_name("operator", "s3cret"),
            0,
        )
        .await
        .unwrap_or_else(|e| panic!("{policy:?}: {e}"));
        let paths = Paths(connection.ns);
        let model = paths.machine(&[
            (connection.ns.di, "Identification"),
            (connection.ns.di, "Model"),
        ]);
        let model = resolve(&connection.session, &model).await.unwrap();
        assert!(text(&read(&connection.session, &model).await).contains("5-axis"));
        connection.session.disconnect().await.unwrap();
    }
    assert!(
        pki.path().join("server/own/cert.der").exists(),
        "the server made its certificate"
    );

    let wrong = connect_with(
        sim.endpoint(),
        &client_pki,
        (
            SecurityPolicy::Basic256Sha256,
            MessageSecurityMode::SignAndEncrypt,
        ),
        IdentityToken::new_user_name("operator", "guess"),
        0,
    )
    .await;
    assert!(wrong.is_err(), "a wrong password is refused");
    let anonymous = connect_with(
        sim.endpoint(),
        &client_pki,
        (SecurityPolicy::None, MessageSecurityMode::None),
        IdentityToken::Anonymous,
        0,
    )
    .await;
    assert!(anonymous.is_err(), "anonymous sessions are refused");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_client_certificate_is_refused_unless_trusted() {
    let (sim, pki) = start_sim(|_| {}).await;
    let refused = connect_with(
        sim.endpoint(),
        &pki.path().join("client"),
        (SecurityPolicy::Basic256Sha256, MessageSecurityMode::Sign),
        IdentityToken::Anonymous,
        0,
    )
    .await;
    assert!(
        refused.is_err(),
        "an untrusted client certificate is refused"
    );
    let rejected = std::fs::read_dir(pki.path().join("server/rejected"))
        .unwrap()
        .count();
    assert_eq!(
        rejected, 1,
        "the refused certificate is kept for an operator to trust"
    );
    sim.stop().await;
}

/// Both faults end every session: the client reconnects (as the driver will) and gets a new
/// session, not its old one back; the machine kept working meanwhile and its counters are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_or_dropped_sessions_end_the_session_and_a_new_one_sees_the_counters_kept() {
    for fault in ["restart:600@runs:3", "drop-sessions@runs:3"] {
        let (sim, pki) = start_sim(|args| {
            args.faults = vec![fault.parse().unwrap()];
            args.time_scale = 10.0;
        })
        .await;
        let connection = connect_with(
            sim.endpoint(),
            &pki.path().join("client"),
            (SecurityPolicy::None, MessageSecurityMode::None),
            IdentityToken::Anonymous,
            100,
        )
        .await
        .unwrap();
        let session = &connection.session;
        let first_session = session.server_session_id();
        let job = store_and_start(&connection, "BRACKET-5AX", 10).await;
        let paths = Paths(connection.ns);
        let mt = connection.ns.machine_tool;
        let runs = resolve(session, &paths.job(&job, &[(mt, "RunsCompleted")]))
            .await
            .unwrap();

        // Poll as a driver watching its link would: from the first failed read to the new session.
        let reconnected = timeout(PATIENCE, async {
            let mut lost = None;
            while session.server_session_id() == first_session {
                let read = session
                    .read(&[runs.clone().into()], TimestampsToReturn::Neither, 0.0)
                    .await;
                if read.is_err() && lost.is_none() {
                    lost = Some(tokio::time::Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            lost.map(|at| at.elapsed())
        })
        .await;
        let Ok(outage) = reconnected else {
            panic!("{fault}: no new session")
        };
        println!("{fault}: first failed read to a new session: {outage:?}");
        assert!(session.wait_for_connection().await);
        let Variant::UInt32(after) = read(session, &runs).await else {
            panic!("RunsCompleted is not a UInt32")
        };
        assert!(after >= 3, "{fault}: counters kept: {after}");
        let state = resolve(
            session,
            &paths.job(&job, &[(mt, "State"), (0, "CurrentState")]),
        )
        .await
        .unwrap();
        wait_for_text(session, &state, "Ended").await;
        assert_eq!(read(session, &runs).await, Variant::UInt32(10));
        assert_eq!(sim.jobs()[0].runs_completed, 10);
        sim.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_fault_delays_method_answers() {
    let (sim, pki) = start_sim(|args| args.faults = vec!["slow:400@time:0".parse().unwrap()]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let connection = connect(&sim, &pki).await;
    let asked = tokio::time::Instant::now();
    let select = call(&connection, "SelectProgram", vec!["HOUSING-5AX".into()]).await;
    assert!(select.status_code.is_good(), "{select:?}");
    assert!(
        asked.elapsed() >= Duration::from_millis(400),
        "{:?}",
        asked.elapsed()
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_status_fault_fails_one_call_and_select_then_start_works() {
    let (sim, pki) = start_sim(|args| {
        args.faults = vec!["bad-status:Start@time:0".parse().unwrap()];
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let connection = connect(&sim, &pki).await;
    let select = call(
        &connection,
        "SelectProgram",
        vec![Variant::from("HOUSING-5AX")],
    )
    .await;
    assert!(select.status_code.is_good(), "{select:?}");
    let failed = call(&connection, "Start", vec![]).await;
    assert_eq!(failed.status_code, StatusCode::BadInternalError);
    assert!(sim.jobs().is_empty(), "the failed call did nothing");
    let started = call(&connection, "Start", vec![]).await;
    assert!(started.status_code.is_good(), "{started:?}");
    let mt = connection.ns.machine_tool;
    let name =
        Paths(connection.ns).machine(&[(mt, "Production"), (mt, "ActiveProgram"), (mt, "Name")]);
    let name = resolve(&connection.session, &name).await.unwrap();
    assert_eq!(text(&read(&connection.session, &name).await), "HOUSING-5AX");
    assert_eq!(sim.jobs()[0].runs_planned, 1);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_uploaded_through_the_file_system_runs() {
    let (sim, pki) = start_sim(|_| {}).await;
    let connection = connect(&sim, &pki).await;
    let session = &connection.session;
    let own = connection.ns.instance;
    let paths = Paths(connection.ns);
    let programs = resolve(session, &paths.machine(&[(own, "Programs")]))
        .await
        .unwrap();
    let create_file = resolve(
        session,
        &paths.machine(&[(own, "Programs"), (0, "CreateFile")]),
    )
    .await
    .unwrap();
    let created = call_on(
        session,
        &programs,
        &create_file,
        vec!["PART-42".into(), true.into()],
    )
    .await;
    assert!(created.status_code.is_good(), "{created:?}");
    let outputs = created.output_arguments.unwrap();
    let (Variant::NodeId(file), Variant::UInt32(handle)) = (&outputs[0], &outputs[1]) else {
        panic!("CreateFile answered {outputs:?}")
    };
    let file_path = |rest: &[(u16, &str)]| {
        let mut path = vec![(own, "Programs"), (own, "PART-42")];
        path.extend_from_slice(rest);
        paths.machine(&path)
    };
    assert_eq!(resolve(session, &file_path(&[])).await.unwrap(), **file);
    let write = resolve(session, &file_path(&[(0, "Write")])).await.unwrap();
    let close = resolve(session, &file_path(&[(0, "Close")])).await.unwrap();

    let program = "G0 X0 Y0\n(cycle-seconds: 0.5)\nG1 X10 F600\nM30\n";
    let (first, second) = program.split_at(20);
    for chunk in [first, second] {
        let data = Variant::from(ByteString::from(chunk.as_bytes().to_vec()));
        let written = call_on(session, file, &write, vec![(*handle).into(), data]).await;
        assert!(written.status_code.is_good(), "{written:?}");
    }
    let mistyped = call_on(
        session,
        file,
        &write,
        vec![
            Variant::Int32(1),
            Variant::from(ByteString::from(vec![1u8])),
        ],
    )
    .await;
    assert_eq!(mistyped.status_code, StatusCode::BadTypeMismatch);
    assert!(
        call_on(session, file, &close, vec![(*handle).into()])
            .await
            .status_code
            .is_good()
    );
    let size = resolve(session, &file_path(&[(0, "Size")])).await.unwrap();
    assert_eq!(
        read(session, &size).await,
        Variant::UInt64(program.len() as u64)
    );
    let again = call_on(
        session,
        &programs,
        &create_file,
        vec!["PART-42".into(), false.into()],
    )
    .await;
    assert_eq!(again.status_code, StatusCode::BadBrowseNameDuplicated);

    let job = store_and_start(&connection, "PART-42", 3).await;
    let state = resolve(
        session,
        &paths.job(
            &job,
            &[(connection.ns.machine_tool, "State"), (0, "CurrentState")],
        ),
    )
    .await
    .unwrap();
    wait_for_text(session, &state, "Ended").await;

    let bracket = |rest: &[(u16, &str)]| {
        let mut path = vec![(own, "Programs"), (own, "BRACKET-5AX")];
        path.extend_from_slice(rest);
        paths.machine(&path)
    };
    let bracket_file = resolve(session, &bracket(&[])).await.unwrap();
    let open = resolve(session, &bracket(&[(0, "Open")])).await.unwrap();
    let read_method = resolve(session, &bracket(&[(0, "Read")])).await.unwrap();
    let opened = call_on(session, &bracket_file, &open, vec![Variant::Byte(1)]).await;
    let Some([Variant::UInt32(reader)]) = opened.output_arguments.as_deref() else {
        panic!("Open answered {opened:?}")
    };
    let content = call_on(
        session,
        &bracket_file,
        &read_method,
        vec![(*reader).into(), 1000i32.into()],
    )
    .await;
    let Some([Variant::ByteString(content)]) = content.output_arguments.as_deref() else {
        panic!("Read answered {content:?}")
    };
    let content = String::from_utf8(content.value.clone().unwrap()).unwrap();
    assert!(
        content.starts_with("(simulated program BRACKET-5AX)"),
        "{content}"
    );
    sim.stop().await;
}
