import Foundation
import HTTPKit
import Testing
import TestSupport

/// deploy/observability against the running services: every metric and label the Grafana
/// dashboards and the Prometheus alert rules use is exported (both executables, real traffic
/// of every kind the dashboards show); the rules pass `promtool check rules`; every alert
/// has a runbook section in docs/operations.md; the dashboards are well-formed for the
/// Grafana schema version they declare.
@Suite(.heavy, .timeLimit(.minutes(15))) struct ObservabilityTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let observability = root.appendingPathComponent("deploy/observability")
    static let dashboards = ["mana-sync", "mana-credits"].map {
        observability.appendingPathComponent("grafana/dashboards/\($0).json")
    }
    static var ruleFiles: [URL] {
        let folder = observability.appendingPathComponent("prometheus/rules")
        return ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter { $0.hasSuffix(".yml") }.sorted()
            .map { folder.appendingPathComponent($0) }
    }
    /// Grafana's dashboard schema versions this check knows: 36 (Grafana 9.x) to 41 (12.x).
    static let supportedSchemaVersions = 36...41
    /// Labels Prometheus adds to every scraped series (from the scrape configuration).
    static let targetLabels: Set<String> = ["job", "instance"]

    // MARK: Every metric exists

    @Test func everyMetricAndLabelTheDashboardsAndRulesUseIsExported() async throws {
        let uses = try Self.dashboardExpressions() + Self.ruleExpressions()
        #expect(uses.count > 40, "only \(uses.count) expressions found")

        try await TestSlots.withSlot {
            let system = try await JourneyTests.System(environment: [
                "GIFT_LOOKUP_LIMIT": "1", "LEDGER_AUDIT_INTERVAL": "1",
            ])
            try await Self.driveTraffic(system)
            let credits = try await Self.scrape(system.creditsCaller)
            let sync = try await Self.scrape(system.syncCaller)
            // The traffic shows (a few spot checks that the scrape is of a working system).
            #expect(credits.has("http_requests_total", ["route": "/api/v1/credits/use", "status": "402"]))
            #expect(credits.has("http_requests_total", ["route": "/api/v1/gifts/{code}", "status": "429"]))
            #expect(credits.value("credits_ledger_audit_violations") == 0)
            #expect((credits.value("credits_sync_renewal_runs_total") ?? 0) >= 1)
            #expect((sync.value("sync_changes_stored_total") ?? 0) >= 1)
            #expect((sync.value("sync_billing_decisions_total", ["decision": "denied"]) ?? 0) >= 1)
            #expect((sync.value("process_resident_memory_bytes") ?? 0) > 1_000_000)
            #expect((credits.value("db_pool_connections_max") ?? 0) > 0)

            let scrapes = ["mana-sync": sync, "mana-credits": credits]
            var problems: [String] = []
            for use in uses {
                problems += Self.check(use, against: scrapes)
            }
            #expect(problems.isEmpty, "\(problems.count) problem(s):\n\(problems.joined(separator: "\n"))")
            try await system.stop()
        }
    }

    /// A little of every kind of traffic the dashboards show.
    static func driveTraffic(_ system: JourneyTests.System) async throws {
        // Sync: a 402 from the gate, then a subscription, a WebSocket, an SSE stream, a push and a pull.
        #expect(try await system.push("watcher").status == .paymentRequired)
        try await system.fund("watcher", 100)
        #expect(try await system.credits(.post, "/api/v1/sync/activate", as: "watcher").status == .ok)
        let token = try await system.token("watcher")
        let socket = try await WSProbe.authenticated("ws://127.0.0.1:\(system.syncPort)/ws", token: token, clientID: "B")
        let stream = SSEProbe(
            url: "http://127.0.0.1:\(system.syncPort)/sync/notes/stream?collections=notes",
            headers: [("Authorization", "Bearer \(token)"), ("X-Client-Id", "C")])
        #expect(await stream.waitFor("changes").count == 1)
        #expect(try await system.push("watcher", client: "A").status == .ok)
        #expect(try await system.pull("watcher").status == .ok)
        #expect(await socket.waitFor { $0["type"] == "sync-available" } != nil)
        #expect(await stream.waitFor("changes", count: 2).count == 2)
        // A WebSocket that fails to authenticate.
        let stranger = try? await WSProbe.authenticated("ws://127.0.0.1:\(system.syncPort)/ws", token: "not-a-token")
        #expect(stranger == nil)

        // Credits: a debit, a 402, a gift bought, looked up past the rate limit and redeemed.
        #expect(try await system.credits(.post, "/api/v1/credits/use", as: "watcher", json: #"{"amount": 1, "appId": "notes", "description": "one"}"#).status == .ok)
        #expect(try await system.credits(.post, "/api/v1/credits/use", as: "pauper", json: #"{"amount": 5, "appId": "notes", "description": "none"}"#).status == .paymentRequired)
        try await system.fund("friend", 100)
        let gift = try await system.credits(.post, "/api/v1/gifts", as: "friend", json: #"{"credits": 10}"#)
        #expect(gift.status == .created, "\(gift.body); mana-credits: \(system.credits.withLock { $0?.output.suffix(3000) ?? "" })")
        let code = try #require(gift.body["code"]?.stringValue)
        #expect(try await system.credits(.get, "/api/v1/gifts/\(code)").status == .ok)
        #expect(try await system.credits(.get, "/api/v1/gifts/\(code)").status == .tooManyRequests)
        #expect(try await system.credits(.post, "/api/v1/gifts/\(code)/redeem", as: "lucky").status == .ok)
        // A Stripe webhook with a bad signature, the recurring charge (one renewal due), an invalidation.
        let forged = try await system.creditsCaller.send(
            .post, "/api/v1/webhooks/stripe", headers: [.init("Stripe-Signature")!: "t=1,v1=00", .contentType: "application/json"], body: "{}")
        #expect(forged.status == .badRequest)
        try await system.creditsSQL("UPDATE credits.sync_subscriptions SET next_charge_at = now() - interval '1 minute'")
        #expect(try await system.credits(.post, "/api/v1/internal/sync/charge-recurring", service: true).status == .ok)

        // The background figures: the outbox's backlog (after each pass) and the audit (every 1 s).
        try await eventually(within: .seconds(30)) {
            let text = (try? await system.creditsCaller.sendText(.get, "/metrics").text) ?? ""
            return text.contains("credits_ledger_audit_last_run_timestamp_seconds") && text.contains("credits_outbox_pending")
        }
        await socket.close()
        await stream.close()
    }

    // MARK: promtool, runbooks, dashboards

    @Test func promtoolAcceptsTheAlertRules() async throws {
        let files = Self.ruleFiles
        #expect(!files.isEmpty)
        guard let promtool = Self.which("promtool") else {
            if ProcessInfo.processInfo.environment["CI"] == "true" {
                Issue.record("promtool is not installed (Debian: apt-get install prometheus; .ci/run installs it)")
            } else {
                print("promtool not installed (apt-get install prometheus): the rules were parsed here but not checked by promtool")
            }
            return
        }
        let check = try await Self.run(promtool, ["check", "rules"] + files.map(\.path))
        #expect(check.status == 0 && check.output.contains("SUCCESS"), "\(check.output)")
        // The rules' unit tests: synthetic series that must (and must not) fire each alert.
        let tests = Self.observability.appendingPathComponent("prometheus/tests/mana.test.yml")
        let unit = try await Self.run(promtool, ["test", "rules", tests.path])
        #expect(unit.status == 0 && unit.output.contains("SUCCESS"), "\(unit.output)")
    }

    /// Runs a program to completion (on a thread of ``Blocking``: it waits for the child).
    static func run(_ executable: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
        try await Blocking.run { try runBlocking(executable, arguments) }
    }

    private static func runBlocking(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }

    @Test func everyAlertHasARunbookSectionInOperations() throws {
        let operations = try String(contentsOf: Self.root.appendingPathComponent("docs/operations.md"), encoding: .utf8)
        let anchors = Set(operations.split(separator: "\n").filter { $0.hasPrefix("#") }.map { Self.anchor(String($0)) })
        var alerts = 0
        for file in Self.ruleFiles {
            let text = try String(contentsOf: file, encoding: .utf8)
            var current: String?
            var runbooks: [String: String] = [:]
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if trimmed.hasPrefix("- alert:") {
                    current = trimmed.dropFirst("- alert:".count).trimmingCharacters(in: .whitespaces)
                    alerts += 1
                } else if trimmed.hasPrefix("runbook_url:"), let alert = current {
                    runbooks[alert] = trimmed.dropFirst("runbook_url:".count).trimmingCharacters(in: .whitespaces)
                }
            }
            for alert in Set(text.split(separator: "\n").compactMap { line -> String? in
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                return trimmed.hasPrefix("- alert:") ? trimmed.dropFirst("- alert:".count).trimmingCharacters(in: .whitespaces) : nil
            }) {
                guard let url = runbooks[alert] else {
                    Issue.record("\(alert): no runbook_url")
                    continue
                }
                let parts = url.split(separator: "#", maxSplits: 1).map(String.init)
                #expect(parts.first?.hasSuffix("docs/operations.md") == true, "\(alert): runbook_url \(url) is not in docs/operations.md")
                #expect(parts.count == 2 && anchors.contains(parts[1]), "\(alert): docs/operations.md has no section #\(parts.last ?? "")")
            }
        }
        #expect(alerts >= 9, "only \(alerts) alerts")
    }

    @Test func theDashboardsAreWellFormedForTheirSchemaVersion() throws {
        let datasources = try Self.filesText(in: Self.observability.appendingPathComponent("grafana/provisioning/datasources"))
        let provider = try Self.filesText(in: Self.observability.appendingPathComponent("grafana/provisioning/dashboards"))
        #expect(provider.contains("path: /var/lib/grafana/dashboards"))
        var uids: Set<String> = []
        for file in Self.dashboards {
            let name = file.lastPathComponent
            let dashboard = try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: file))
            let version = try #require(dashboard["schemaVersion"]?.doubleValue, "\(name): no schemaVersion")
            #expect(Self.supportedSchemaVersions.contains(Int(version)), "\(name): schemaVersion \(version)")
            let uid = try #require(dashboard["uid"]?.stringValue, "\(name): no uid")
            let newUID = uids.insert(uid).inserted
            #expect(newUID, "\(name): uid \(uid) used twice")
            #expect(dashboard["title"]?.stringValue?.isEmpty == false, "\(name): no title")
            let panels = try #require(dashboard["panels"]?.array, "\(name): no panels")
            #expect(panels.count >= 10)
            var ids: Set<Int> = []
            var areas: [(title: String, x: Int, y: Int, w: Int, h: Int)] = []
            for panel in panels {
                let title = panel["title"]?.stringValue ?? "?"
                let id = try #require(panel["id"]?.doubleValue, "\(name) \(title): no id")
                let newID = ids.insert(Int(id)).inserted
                #expect(newID, "\(name) \(title): id \(id) used twice")
                let grid = try #require(panel["gridPos"], "\(name) \(title): no gridPos")
                let (x, y, w, h) = (
                    Int(grid["x"]?.doubleValue ?? -1), Int(grid["y"]?.doubleValue ?? -1), Int(grid["w"]?.doubleValue ?? 0),
                    Int(grid["h"]?.doubleValue ?? 0)
                )
                #expect(x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= 24, "\(name) \(title): gridPos \(x),\(y) \(w)×\(h)")
                for other in areas where x < other.x + other.w && other.x < x + w && y < other.y + other.h && other.y < y + h {
                    Issue.record("\(name): \(title) overlaps \(other.title)")
                }
                areas.append((title, x, y, w, h))
                let type = try #require(panel["type"]?.stringValue, "\(name) \(title): no type")
                if type == "row" { continue }
                #expect(["timeseries", "stat", "gauge", "table", "bargauge"].contains(type), "\(name) \(title): panel type \(type)")
                let source = panel["datasource"]
                #expect(source?["type"] == "prometheus", "\(name) \(title): datasource \(String(describing: source))")
                let sourceUID = source?["uid"]?.stringValue ?? ""
                #expect(datasources.contains("uid: \(sourceUID)"), "\(name) \(title): datasource uid \(sourceUID) is not provisioned")
                let targets = panel["targets"]?.array ?? []
                #expect(!targets.isEmpty, "\(name) \(title): no targets")
                var refs: Set<String> = []
                for target in targets {
                    #expect(target["expr"]?.stringValue?.isEmpty == false, "\(name) \(title): a target without expr")
                    let newRef = refs.insert(target["refId"]?.stringValue ?? "").inserted
                    #expect(newRef, "\(name) \(title): refIds repeat")
                    #expect(target["datasource"]?["uid"]?.stringValue == sourceUID, "\(name) \(title): target datasource")
                }
            }
        }
    }

    @Test func theLoosePromQLReaderFindsMetricsLabelsAndGroupings() {
        let use = PromQL.parse(
            #"histogram_quantile(0.99, sum by (le, route) (rate(x_bucket{job="a",route!="/b",status=~"5.."}[$__rate_interval]))) > 1 and sum by (route) (rate(x_count[5m:1m])) / on (route) group_left max(y)"#)
        #expect(use.selectors.map(\.metric) == ["x_bucket", "x_count", "y"])
        #expect(use.selectors[0].matchers.map { "\($0.label)\($0.op)\($0.value)" } == ["job=a", "route!=/b", "status=~5.."])
        #expect(use.labels(for: 0) == ["le", "route"])
        #expect(use.labels(for: 1) == ["route"])
        #expect(use.labels(for: 2).isEmpty)
    }

    // MARK: Reading the expressions

    struct Use {
        let origin: String
        let expression: String
    }

    static func dashboardExpressions() throws -> [Use] {
        var uses: [Use] = []
        for file in dashboards {
            let dashboard = try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: file))
            for panel in dashboard["panels"]?.array ?? [] {
                for target in panel["targets"]?.array ?? [] {
                    if let expr = target["expr"]?.stringValue {
                        uses.append(Use(origin: "\(file.lastPathComponent) “\(panel["title"]?.stringValue ?? "?")”", expression: expr))
                    }
                }
            }
            // Template variables: label_values(selector, label).
            for variable in dashboard["templating"]?["list"]?.array ?? [] {
                guard let definition = variable["definition"]?.stringValue, definition.hasPrefix("label_values("),
                    let comma = definition.lastIndex(of: ",")
                else { continue }
                let selector = String(definition[definition.index(definition.startIndex, offsetBy: 13)..<comma])
                uses.append(Use(origin: "\(file.lastPathComponent) variable \(variable["name"]?.stringValue ?? "?")", expression: selector))
            }
        }
        return uses
    }

    /// Every `expr:` of the rule files (a one-line value or a `|` block).
    static func ruleExpressions() throws -> [Use] {
        var uses: [Use] = []
        for file in ruleFiles {
            let lines = try String(contentsOf: file, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            var alert = "?"
            var index = 0
            while index < lines.count {
                let line = lines[index]
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                index += 1
                if trimmed.hasPrefix("- alert:") || trimmed.hasPrefix("- record:") {
                    alert = String(trimmed.split(separator: ":", maxSplits: 1)[1]).trimmingCharacters(in: .whitespaces)
                }
                guard trimmed.hasPrefix("expr:") else { continue }
                let value = trimmed.dropFirst(5).trimmingCharacters(in: .whitespaces)
                var expression = value
                if value.hasPrefix("|") || value.hasPrefix(">") {
                    let indent = line.prefix { $0 == " " }.count
                    var block: [String] = []
                    while index < lines.count,
                        lines[index].trimmingCharacters(in: .whitespaces).isEmpty || lines[index].prefix(while: { $0 == " " }).count > indent
                    {
                        block.append(lines[index])
                        index += 1
                    }
                    expression = block.joined(separator: "\n")
                } else if value.hasPrefix("\"") || value.hasPrefix("'") {
                    expression = String(value.dropFirst().dropLast())
                }
                uses.append(Use(origin: "\(file.lastPathComponent) \(alert)", expression: expression))
            }
        }
        return uses
    }

    // MARK: Checking one expression against the scrapes

    /// What is wrong with `use` against the scrapes (by service name): a metric a selector names
    /// must be exported by every service its `job` matcher selects (both without one), with
    /// every label its matchers and enclosing `by (…)` name (`job`, `instance` are the
    /// scrape's own); an `=` matcher's value must occur.
    static func check(_ use: Use, against scrapes: [String: Scrape]) -> [String] {
        let parsed = PromQL.parse(use.expression)
        var problems: [String] = []
        if parsed.selectors.isEmpty { problems.append("\(use.origin): no metric in \(use.expression)") }
        for (index, selector) in parsed.selectors.enumerated() {
            var services = scrapes.keys.sorted()
            if let job = selector.matchers.first(where: { $0.label == "job" }) {
                services = services.filter { job.matches($0) }
                if services.isEmpty { problems.append("\(use.origin): job matcher \(job.op)\"\(job.value)\" selects no service") }
            }
            let labels = Set(selector.matchers.map(\.label) + parsed.labels(for: index)).subtracting(targetLabels)
            for service in services {
                let samples = scrapes[service]!.samples[selector.metric] ?? []
                guard !samples.isEmpty else {
                    problems.append("\(use.origin): \(service) exports no \(selector.metric)")
                    continue
                }
                for label in labels.sorted() where !samples.contains(where: { $0[label] != nil }) {
                    problems.append("\(use.origin): \(service) \(selector.metric) has no label \(label)")
                }
                for matcher in selector.matchers where matcher.op == "=" && !targetLabels.contains(matcher.label) && !matcher.value.contains("$") {
                    if !samples.contains(where: { $0[matcher.label] == matcher.value }) {
                        problems.append("\(use.origin): \(service) \(selector.metric) has no \(matcher.label)=\"\(matcher.value)\"")
                    }
                }
            }
        }
        return problems
    }

    // MARK: Scrapes

    struct Scrape {
        /// Sample name → the label sets it is exported with.
        var samples: [String: [[String: String]]] = [:]
        var values: [String: [([String: String], Double)]] = [:]

        init(_ text: String) {
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                let name = String(line.prefix { $0 != "{" && $0 != " " })
                var labels: [String: String] = [:]
                var rest = line.dropFirst(name.count)
                if rest.hasPrefix("{"), let close = rest.lastIndex(of: "}") {
                    labels = PromQL.matchers(String(rest[rest.index(after: rest.startIndex)..<close])).reduce(into: [:]) { $0[$1.label] = $1.value }
                    rest = rest[rest.index(after: close)...]
                }
                samples[name, default: []].append(labels)
                values[name, default: []].append((labels, Double(rest.trimmingCharacters(in: .whitespaces)) ?? .nan))
            }
        }

        func has(_ name: String, _ labels: [String: String]) -> Bool {
            samples[name]?.contains { sample in labels.allSatisfy { sample[$0.key] == $0.value } } ?? false
        }

        func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
            values[name]?.first { sample in labels.allSatisfy { sample.0[$0.key] == $0.value } }?.1
        }
    }

    static func scrape(_ caller: HTTPCaller) async throws -> Scrape {
        let (status, _, text) = try await caller.sendText(.get, "/metrics")
        #expect(status == .ok)
        return Scrape(text)
    }

    // MARK: Helpers

    static func which(_ tool: String) -> String? {
        for folder in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(folder)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    static func filesText(in folder: URL) throws -> String {
        try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
            .map { try String(contentsOf: folder.appendingPathComponent($0), encoding: .utf8) }.joined(separator: "\n")
    }

    /// GitHub's anchor of a Markdown heading: lower case, spaces to `-`, punctuation dropped.
    static func anchor(_ heading: String) -> String {
        let text = heading.drop { $0 == "#" }.trimmingCharacters(in: .whitespaces).lowercased()
        return String(text.compactMap { character -> Character? in
            if character == " " { return "-" }
            if character.isLetter || character.isNumber || character == "-" || character == "_" { return character }
            return nil
        })
    }
}

/// A loose reader of PromQL: the metric selectors (name and label matchers) of an expression
/// and the `by (…)` labels that apply to each. Not a parser: enough for the dashboards' and
/// rules' expressions (functions are names followed by `(`; `[…]` ranges are skipped).
enum PromQL {
    struct Matcher: Equatable {
        let label: String
        let op: String
        let value: String

        func matches(_ candidate: String) -> Bool {
            switch op {
            case "=": return candidate == value
            case "!=": return candidate != value
            default:
                let matched = (try? Regex(value)).map { candidate.wholeMatch(of: $0) != nil } ?? (candidate == value)
                return op == "=~" ? matched : !matched
            }
        }
    }

    struct Selector {
        let metric: String
        let matchers: [Matcher]
        let position: Int
    }

    struct Use {
        var selectors: [Selector] = []
        /// `by (labels)` and the range of characters (the aggregation's argument) they apply to.
        var groupings: [(labels: [String], range: Range<Int>)] = []

        func labels(for index: Int) -> [String] {
            let position = selectors[index].position
            return groupings.filter { $0.range.contains(position) }.flatMap(\.labels)
        }
    }

    static let keywords: Set<String> = [
        "and", "or", "unless", "bool", "offset", "inf", "nan", "atan2",
        // Aggregation operators, which may be followed by `by (…)` instead of `(`.
        "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile",
        "limitk", "limit_ratio",
    ]

    static func parse(_ text: String) -> Use {
        let c = Array(text)
        var use = Use()
        var i = 0
        func isStart(_ ch: Character) -> Bool { ch.isLetter || ch == "_" || ch == ":" }
        func isPart(_ ch: Character) -> Bool { isStart(ch) || ch.isNumber }
        func skipSpaces(_ j: Int) -> Int {
            var j = j
            while j < c.count, c[j].isWhitespace { j += 1 }
            return j
        }
        func endOfString(_ start: Int) -> Int {
            let quote = c[start]
            var j = start + 1
            while j < c.count, c[j] != quote {
                if c[j] == "\\" { j += 1 }
                j += 1
            }
            return j + 1
        }
        /// The index of the bracket closing the one at `open`, strings skipped.
        func closing(_ open: Int) -> Int {
            var depth = 0
            var j = open
            while j < c.count {
                switch c[j] {
                case "\"", "'", "`":
                    j = endOfString(j)
                    continue
                case "(", "[", "{": depth += 1
                case ")", "]", "}":
                    depth -= 1
                    if depth == 0 { return j }
                default: break
                }
                j += 1
            }
            return c.count - 1
        }
        while i < c.count {
            let ch = c[i]
            if ch == "\"" || ch == "'" || ch == "`" {
                i = endOfString(i)
            } else if ch == "[" {
                i = closing(i) + 1
            } else if ch.isNumber {
                while i < c.count, isPart(c[i]) || c[i] == "." { i += 1 }
            } else if isStart(ch) {
                let start = i
                while i < c.count, isPart(c[i]) { i += 1 }
                let word = String(c[start..<i])
                let next = skipSpaces(i)
                if ["by", "without", "on", "ignoring", "group_left", "group_right"].contains(word) {
                    guard next < c.count, c[next] == "(" else { continue }
                    let close = closing(next)
                    let labels = String(c[(next + 1)..<close]).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                        .filter { !$0.isEmpty }
                    i = close + 1
                    let argument = skipSpaces(i)
                    if word == "by", argument < c.count, c[argument] == "(" {
                        use.groupings.append((labels, argument..<closing(argument)))
                    }
                } else if keywords.contains(word.lowercased()) {
                    continue
                } else if next < c.count, c[next] == "(" {
                    continue  // a function
                } else {
                    var found: [Matcher] = []
                    if next < c.count, c[next] == "{" {
                        let close = closing(next)
                        found = matchers(String(c[(next + 1)..<close]))
                        i = close + 1
                    }
                    use.selectors.append(Selector(metric: word, matchers: found, position: start))
                }
            } else {
                i += 1
            }
        }
        return use
    }

    /// `label op "value"` pairs of a `{…}` block (also a scrape line's labels).
    static func matchers(_ block: String) -> [Matcher] {
        let pattern = #/([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/#
        return block.matches(of: pattern).map { match in
            Matcher(
                label: String(match.output.1), op: String(match.output.2),
                value: String(match.output.3).replacingOccurrences(of: #"\""#, with: "\"").replacingOccurrences(of: #"\\"#, with: #"\"#))
        }
    }
}

extension JSONValue {
    fileprivate var doubleValue: Double? {
        if case .number(let value) = self { return value }
        return nil
    }
}
