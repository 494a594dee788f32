// The scenario: a FixedLengthScenario (one frame per iteration, Perception's per-iteration seeding from
// constants.randomSeed) configured from the scenario JSON, plus the component that points Perception's
// output (SOLO or the legacy 0.x layout) at the folder the Python side imports from.
using System.IO;
using UnityEngine;
using UnityEngine.Perception.GroundTruth;
using UnityEngine.Perception.GroundTruth.Consumers;
using UnityEngine.Perception.Randomization.Scenarios;
using UnityEngine.Perception.Settings;

namespace Sim2Real
{
    [AddComponentMenu("Sim2Real/Sim2Real Scenario")]
    public class Sim2RealScenario : FixedLengthScenario
    {
        public const string DoneMarker = "sim2real_done.json";

        [Tooltip("Scenario JSON; the command-line argument -sim2realScenario <path> takes precedence")]
        public string configPath;

        ScenarioConfig m_Config;

        public ScenarioConfig config => m_Config ??= ScenarioConfig.Load(ScenarioConfig.ArgumentPath() ?? configPath);

        protected override void OnAwake()
        {
            constants.iterationCount = config.iterations;
            framesPerIteration = 1; // a field of the scenario in Perception 1.0 (not of its constants)
            constants.randomSeed = config.seed;
            base.OnAwake();
        }

        protected override void OnComplete()
        {
            base.OnComplete(); // ends the simulation: Perception flushes every file
            File.WriteAllText(Path.Combine(config.output_dir, DoneMarker),
                $"{{\"iterations\": {config.iterations}, \"seed\": {config.seed}}}\n");
        }
    }

    // Runs before anything touches DatasetCapture (which creates its simulation lazily).
    [DefaultExecutionOrder(-2000)]
    [AddComponentMenu("Sim2Real/Dataset Output")]
    public class DatasetOutput : MonoBehaviour
    {
        public Sim2RealScenario scenario;

        void Awake()
        {
            var config = scenario.config;
            Directory.CreateDirectory(config.output_dir);
            PerceptionSettings.instance.endpoint = config.output_format == "perception"
                ? (IConsumerEndpoint)new PerceptionEndpoint()
                : new SoloEndpoint();
            DatasetCapture.SetOutputPath(config.output_dir);
        }
    }
}
