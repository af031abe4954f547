import HTTPKit
import Testing

@testable import ManaCredits

/// The reservation routes' input rules and the reason → app mapping (no database).
@Suite struct ReservationInputTests {
    @Test func theLedgerAppIsTheReasonBeforeItsFirstColon() {
        #expect(Reservations.appID(of: "research:tavily:search") == "research")
        #expect(Reservations.appID(of: "plain") == "plain")
        #expect(Reservations.appID(of: ":leading") == "")
    }

    @Test func ttlIsAWholeNumberOfSecondsFromAMinuteToADay() throws {
        #expect(try ReservationController.ttl(nil) == .seconds(3600))
        #expect(try ReservationController.ttl(.null) == .seconds(3600))
        #expect(try ReservationController.ttl(60) == .seconds(60))
        #expect(try ReservationController.ttl(86_400) == .seconds(86_400))
        let bad: [JSONValue] = [59, 86_401, .number(90.5), "600", true]
        for bad in bad {
            #expect(throws: APIError.self) { try ReservationController.ttl(bad) }
        }
    }

    @Test func amountsAreWholeCreditsUpToAMillion() throws {
        #expect(try ReservationController.amount(1) == 1)
        #expect(try ReservationController.amount(1_000_000) == 1_000_000)
        let bad: [JSONValue] = [0, -1, .number(1.5), 1_000_001, "5"]
        for bad in bad {
            #expect(throws: APIError.self) { try ReservationController.amount(bad) }
        }
        #expect(throws: APIError.self) { try ReservationController.amount(nil) }
    }

    @Test func reservationIdsAreUUIDsAnsweredInLowercase() throws {
        #expect(try ReservationController.reservationID("6F1C0E9A-0000-4000-8000-000000000001") == "6f1c0e9a-0000-4000-8000-000000000001")
        for bad in [nil, "", "6f1c", "not-a-uuid"] as [String?] {
            #expect(throws: APIError.self) { try ReservationController.reservationID(bad) }
        }
    }
}
