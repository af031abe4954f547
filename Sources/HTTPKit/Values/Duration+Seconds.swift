extension Duration {
    /// The duration in seconds, with its fraction: `Duration.milliseconds(1500).inSeconds == 1.5`.
    package var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    /// The duration in whole microseconds (the unit of change cursors): `.seconds(2).microseconds == 2_000_000`.
    package var microseconds: Int64 {
        components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000
    }

    /// Seconds as short text for messages: "30", "1.5".
    package var secondsText: String {
        let seconds = self.inSeconds
        return seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
    }
}
