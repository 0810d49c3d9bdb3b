/*
 * A single-node OpenSearch for the tests, started straight from the Maven jars.
 *
 * Why not org.opensearch.bootstrap.OpenSearch: it only loads the HTTP transport from a
 * distribution's modules/ directory (a zip with a plugin descriptor), which Maven Central
 * does not carry for transport-netty4.  Node's protected constructor takes plugins from
 * the classpath instead -- the same door OpenSearch's own test framework (MockNode) uses.
 * Bootstrap's production checks and security manager are skipped on purpose: loopback
 * only, test data only.
 *
 * Usage: java -cp <lib>/*:<classes> FediSearchNode <home> <http port> <transport port>
 */
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.transport.Netty4Plugin;

public final class FediSearchNode {
    private static final class ClasspathNode extends Node {
        ClasspathNode(Environment env) {
            super(env, List.of(Netty4Plugin.class, CommonAnalysisPlugin.class), true);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: FediSearchNode <home> <http port> <transport port>");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        Files.createDirectories(home.resolve("config"));
        Settings settings = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("cluster.name", "fedi-test")
            .put("node.name", "fedi-test-0")
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", args[1])
            .put("transport.port", args[2])
            // A nearly full developer disk must not turn the test indices read-only.
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .build();
        LogConfigurator.configureWithoutConfig(settings);
        Environment env = InternalSettingsPreparer.prepareEnvironment(settings, Map.of(), home.resolve("config"), () -> "fedi-test-0");
        Node node = new ClasspathNode(env);
        CountDownLatch stopped = new CountDownLatch(1);
        // SIGTERM from down.sh: close the node so its data directory stays consistent.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
            } catch (Exception e) {
                e.printStackTrace();
            }
            stopped.countDown();
        }));
        node.start();
        System.out.println("fedi-test OpenSearch node started on http://127.0.0.1:" + args[1]);
        stopped.await();
    }
}
