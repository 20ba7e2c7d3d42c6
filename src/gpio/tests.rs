use super::*;

/// A backend whose input levels the test sets directly.
fn input(active: ActiveLevel) -> (watch::Sender<bool>, Input) {
    let (tx, levels) = watch::channel(false);
    let input = Input {
        pin: 4,
        active_low: active == ActiveLevel::Low,
        debounce: Duration::from_millis(20),
        levels,
        level: false,
        pending: None,
        _hold: Box::new(()),
    };
    (tx, input)
}

#[tokio::test(start_paused = true)]
async fn a_level_that_holds_for_the_debounce_time_is_an_edge() {
    let (tx, mut input) = input(ActiveLevel::High);
    assert!(!input.is_active());
    let t0 = Instant::now();
    tx.send_replace(true);
    let edge = input.next().await.unwrap();
    assert!(edge.active && input.is_active());
    assert_eq!(edge.at, t0, "stamped when the level changed");
    assert_eq!(Instant::now() - t0, Duration::from_millis(20));
}

#[tokio::test(start_paused = true)]
async fn bounces_shorter_than_the_debounce_time_are_ignored() {
    let (tx, mut input) = input(ActiveLevel::Low);
    // Active low: the idle level (low) means active already.
    assert!(input.is_active());
    let bounce = tokio::spawn(async move {
        for _ in 0..5 {
            tx.send_replace(true);
            tokio::time::sleep(Duration::from_millis(5)).await;
            tx.send_replace(false);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tx.send_replace(true);
        tokio::time::sleep(Duration::from_secs(1)).await;
        tx
    });
    let t0 = Instant::now();
    let edge = input.next().await.unwrap();
    assert!(!edge.active, "high means inactive when active low");
    assert_eq!(edge.at - t0, Duration::from_millis(50));
    let _tx = bounce.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_pending_level_survives_a_cancelled_wait() {
    let (tx, mut input) = input(ActiveLevel::High);
    tx.send_replace(true);
    let t0 = Instant::now();
    // Cancelled half-way through the debounce time, as a select! would.
    let cut = tokio::time::timeout(Duration::from_millis(10), input.next()).await;
    assert!(cut.is_err());
    let edge = input.next().await.unwrap();
    assert_eq!((edge.active, edge.at), (true, t0));
}

#[tokio::test(start_paused = true)]
async fn an_input_ends_when_its_backend_goes() {
    let (tx, mut input) = input(ActiveLevel::High);
    drop(tx);
    assert_eq!(input.next().await, None);
}

struct Recorder(Arc<std::sync::Mutex<Vec<bool>>>);
impl Driver for Recorder {
    fn write(&mut self, high: bool) {
        self.0.lock().unwrap().push(high);
    }
}

#[test]
fn outputs_apply_their_polarity_and_fall_inactive_when_dropped() {
    for active_low in [true, false] {
        let levels = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut out = Output {
            pin: 5,
            active_low,
            active: false,
            driver: Box::new(Recorder(levels.clone())),
        };
        out.set(true);
        out.set(true);
        drop(out);
        let on = !active_low;
        assert_eq!(
            *levels.lock().unwrap(),
            [on, !on],
            "active_low {active_low}"
        );
    }
}
