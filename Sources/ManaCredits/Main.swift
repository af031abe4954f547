import ArgumentParser
import HTTPKit

@main
enum Main {
    static func main() async {
        // The event loops become Swift Concurrency's executor before anything else runs.
        ServiceRuntime.adoptEventLoopsAsGlobalExecutor(byDefault: true)
        await ManaCreditsCommand.main()
    }
}
