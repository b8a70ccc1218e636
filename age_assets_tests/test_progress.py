from age_assets.ml.progress import Progress, duration


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_logs_at_most_every_interval_with_rate_and_time_left_and_once_at_the_end() -> None:
    lines: list[str] = []
    clock = Clock()
    progress = Progress(lines.append, "decoding train images", 10_000, every_s=30, clock=clock)
    for _ in range(100):  # 100 blocks of 50 images, one every 0.5 s: 50 s for half the work
        clock.now += 0.5
        progress.advance(50)
    assert lines == ["decoding train images: 3,000/10,000 images (30%), 100.0 images/s, about 70 s left"], \
        "one line after 30 s, none in the 20 s since"
    for _ in range(100):
        clock.now += 0.5
        progress.advance(50)
    assert len(lines) == 4, "one more line at 60 s and 90 s, and one at the end"
    assert lines[-1] == "decoding train images: 10,000/10,000 images (100%), done in 2 min (100.0 images/s)"


def test_durations_read_in_the_unit_that_fits() -> None:
    assert [duration(s) for s in (42, 600, 7200)] == ["42 s", "10 min", "2.0 h"]
