import ArgumentParser
import HTTPKit

@main
enum Main {
    static func main() async {
        // Swift's default executor unless MANA_NIO_EXECUTOR=1: 1,000-change pulls are 25% faster without the NIO executor.
        ServiceRuntime.adoptEventLoopsAsGlobalExecutor(byDefault: false)
        await ManaSyncCommand.main()
    }
}
