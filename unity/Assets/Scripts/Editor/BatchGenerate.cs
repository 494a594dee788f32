// Batch entry point: Unity -batchmode -projectPath unity -executeMethod Sim2Real.Editor.BatchGenerate.Run
//   -logFile <log> -sim2realScenario <scenario.json>
// Builds the scene from the scenario JSON (no binary .unity file is kept in git), enters Play mode, lets
// the scenario run its iterations (Perception writes the images and the sim2real.sample metrics) and
// exits the editor with code 0 once the scenario wrote its completion marker (1 otherwise).
// Do not pass -quit: the editor would quit when Run returns, before Play mode starts. Do not pass
// -nographics: the cameras need a graphics device.
using System;
using System.IO;
using UnityEditor;
using UnityEditor.SceneManagement;
using UnityEngine;
using UnityEngine.Perception.GroundTruth;
using UnityEngine.Rendering;
using UnityEngine.Rendering.HighDefinition;
using UnityEngine.SceneManagement;

namespace Sim2Real.Editor
{
    public static class BatchGenerate
    {
        public const string ScenePath = "Assets/Scenes/Sim2RealGenerated.unity";
        const string SettingsDir = "Assets/Settings";
        const string PipelinePath = SettingsDir + "/Sim2RealHDRP.asset";
        const string VolumePath = SettingsDir + "/Sim2RealVolume.asset";
        const string TargetPath = SettingsDir + "/Sim2RealTarget.renderTexture";
        const string ShapeMaterialPath = SettingsDir + "/Sim2RealShape.mat";
        internal const string RunningKey = "Sim2Real.BatchGenerate.Running";
        internal const string OutputKey = "Sim2Real.BatchGenerate.Output";

        public static void Run()
        {
            try
            {
                var path = ScenarioConfig.ArgumentPath()
                    ?? throw new ArgumentException("Sim2Real: pass -sim2realScenario <scenario.json>");
                path = Path.GetFullPath(path);
                var config = ScenarioConfig.Load(path);
                BuildScene(config, path);
                SessionState.SetBool(RunningKey, true);
                SessionState.SetString(OutputKey, config.output_dir);
                Debug.Log($"Sim2Real: scene built, running {config.iterations} iterations into {config.output_dir}");
                EditorApplication.EnterPlaymode();
            }
            catch (Exception exception)
            {
                Debug.LogException(exception);
                EditorApplication.Exit(1);
            }
        }

        [MenuItem("Sim2Real/Build Scene From Scenario JSON...")]
        static void BuildFromMenu()
        {
            var path = EditorUtility.OpenFilePanel("Scenario JSON (written by sim2real_faces/unity/scenario.py)", "", "json");
            if (!string.IsNullOrEmpty(path))
                BuildScene(ScenarioConfig.Load(path), path);
        }

        public static Scene BuildScene(ScenarioConfig config, string configPath)
        {
            AssetDatabase.Refresh(); // imports the GLBs exported by sim2real_faces/unity/gltf.py
            Directory.CreateDirectory(SettingsDir);
            ConfigureRendering(config);
            var scene = EditorSceneManager.NewScene(NewSceneSetup.EmptyScene, NewSceneMode.Single);
            var root = new GameObject("Sim2Real");

            var cameraObject = Child(root, "Camera");
            var camera = cameraObject.AddComponent<Camera>();
            camera.targetTexture = RenderTarget(config);
            var cameraData = cameraObject.AddComponent<HDAdditionalCameraData>();
            cameraData.clearColorMode = HDAdditionalCameraData.ClearColorMode.Color;
            cameraData.backgroundColorHDR = new Color(0.5f, 0.5f, 0.5f, 1f);
            // HDRP has no MSAA on this path; SMAA stands in (TAA would blend independent frames).
            cameraData.antialiasing = config.msaa > 1
                ? HDAdditionalCameraData.AntialiasingMode.SubpixelMorphologicalAntiAliasing
                : HDAdditionalCameraData.AntialiasingMode.None;
            var perception = cameraObject.AddComponent<PerceptionCamera>();
            perception.id = "camera";
            perception.description = "Camera of the sim2real-faces scenario";
            perception.captureRgbImages = true;
            perception.captureTriggerMode = CaptureTriggerMode.Scheduled;
            perception.firstCaptureFrame = 0; // counted within each iteration (one frame per iteration)
            perception.framesBetweenCaptures = 0;
            perception.showVisualizations = false;

            foreach (var side in new[] { "LightLeft", "LightRight" })
            {
                var lightObject = Child(root, side);
                var light = lightObject.AddComponent<Light>();
                light.type = LightType.Directional;
                light.shadows = LightShadows.Soft;
                lightObject.AddComponent<HDAdditionalLightData>();
            }

            var volume = Child(root, "Volume").AddComponent<Volume>();
            volume.isGlobal = true;
            volume.priority = 100f; // above the project's default volume profile
            volume.sharedProfile = VolumeProfileAsset();

            var humans = Child(root, "Humans");
            foreach (var identity in config.identities)
            {
                var asset = AssetDatabase.LoadAssetAtPath<GameObject>(identity.glb)
                    ?? throw new FileNotFoundException($"Sim2Real: {identity.glb} not imported (export the humans, check glTFast)");
                var human = (GameObject)PrefabUtility.InstantiatePrefab(asset, humans.transform);
                human.name = identity.name;
                human.SetActive(false);
            }

            var prototypes = Child(root, "ShapePrototypes");
            var shapeMaterial = ShapeMaterial();
            foreach (var shapeAsset in config.shape_assets)
            {
                var asset = AssetDatabase.LoadAssetAtPath<GameObject>(shapeAsset)
                    ?? throw new FileNotFoundException($"Sim2Real: {shapeAsset} not imported (export the shapes)");
                var shape = (GameObject)PrefabUtility.InstantiatePrefab(asset, prototypes.transform);
                PrefabUtility.UnpackPrefabInstance(shape, PrefabUnpackMode.Completely, InteractionMode.AutomatedAction);
                shape.name = Path.GetFileNameWithoutExtension(shapeAsset);
                foreach (var renderer in shape.GetComponentsInChildren<Renderer>(true))
                    renderer.sharedMaterial = shapeMaterial;
                shape.SetActive(false);
            }
            Child(root, "Background");

            var scenarioObject = new GameObject("Scenario");
            var scenario = scenarioObject.AddComponent<Sim2RealScenario>();
            scenario.configPath = configPath;
            scenario.AddRandomizer(new HumanRandomizer());
            scenario.AddRandomizer(new PlacementRandomizer());
            scenario.AddRandomizer(new HeadRotationRandomizer());
            scenario.AddRandomizer(new BackgroundWallRandomizer());
            scenario.AddRandomizer(new LightRandomizer());
            scenario.AddRandomizer(new SampleMetadataReporter()); // last: reads the others' values
            scenarioObject.AddComponent<DatasetOutput>().scenario = scenario;

            Directory.CreateDirectory(Path.GetDirectoryName(ScenePath));
            EditorSceneManager.SaveScene(scene, ScenePath);
            return scene;
        }

        static GameObject Child(GameObject parent, string name)
        {
            var child = new GameObject(name);
            child.transform.SetParent(parent.transform, false);
            return child;
        }

        static void ConfigureRendering(ScenarioConfig config)
        {
            // Perception 1.x requires HDRP (PerceptionCamera quits otherwise).
            PlayerSettings.colorSpace = ColorSpace.Linear;
            var pipeline = AssetDatabase.LoadAssetAtPath<HDRenderPipelineAsset>(PipelinePath);
            if (pipeline == null)
            {
                pipeline = ScriptableObject.CreateInstance<HDRenderPipelineAsset>();
                AssetDatabase.CreateAsset(pipeline, PipelinePath);
            }
            GraphicsSettings.renderPipelineAsset = pipeline;
            QualitySettings.renderPipeline = pipeline;
            AssetDatabase.SaveAssets();
        }

        static RenderTexture RenderTarget(ScenarioConfig config)
        {
            AssetDatabase.DeleteAsset(TargetPath);
            var target = new RenderTexture(config.width, config.height, 24, RenderTextureFormat.ARGB32);
            AssetDatabase.CreateAsset(target, TargetPath);
            return target;
        }

        static VolumeProfile VolumeProfileAsset()
        {
            AssetDatabase.DeleteAsset(VolumePath);
            var profile = ScriptableObject.CreateInstance<VolumeProfile>();
            AssetDatabase.CreateAsset(profile, VolumePath);
            // Sky = a uniform grey gradient (the ambient light, set per frame), no fog, fixed exposure,
            // tone mapping per params; the effects the embedded renderer lacks are switched off.
            var environment = Add<VisualEnvironment>(profile);
            environment.skyType.Override((int)SkyType.Gradient);
            environment.skyAmbientMode.Override(SkyAmbientMode.Dynamic);
            Add<GradientSky>(profile);
            Add<Fog>(profile).enabled.Override(false);
            Add<Exposure>(profile).mode.Override(ExposureMode.Fixed);
            Add<Tonemapping>(profile);
            Add<Bloom>(profile).intensity.Override(0f);
            Add<MotionBlur>(profile).intensity.Override(0f);
            Add<Vignette>(profile).intensity.Override(0f);
            Add<ScreenSpaceAmbientOcclusion>(profile).intensity.Override(0f);
            AssetDatabase.SaveAssets();
            return profile;
        }

        static T Add<T>(VolumeProfile profile) where T : VolumeComponent
        {
            var component = profile.Add<T>(true);
            component.hideFlags = HideFlags.HideInInspector | HideFlags.HideInHierarchy;
            AssetDatabase.AddObjectToAsset(component, profile);
            return component;
        }

        static Material ShapeMaterial()
        {
            var material = AssetDatabase.LoadAssetAtPath<Material>(ShapeMaterialPath);
            if (material != null)
                return material;
            var shader = Shader.Find("HDRP/Lit")
                ?? throw new InvalidOperationException("Sim2Real: HDRP/Lit shader missing (is HDRP installed?)");
            material = new Material(shader) { enableInstancing = true };
            AssetDatabase.CreateAsset(material, ShapeMaterialPath);
            return material;
        }
    }

    // Survives the domain reload of entering/leaving Play mode (SessionState), and ends the batch run.
    [InitializeOnLoad]
    static class BatchGenerateExit
    {
        static BatchGenerateExit()
        {
            EditorApplication.playModeStateChanged += OnPlayModeChanged;
        }

        static void OnPlayModeChanged(PlayModeStateChange state)
        {
            if (state != PlayModeStateChange.EnteredEditMode || !SessionState.GetBool(BatchGenerate.RunningKey, false))
                return;
            SessionState.SetBool(BatchGenerate.RunningKey, false);
            var marker = Path.Combine(SessionState.GetString(BatchGenerate.OutputKey, ""), Sim2RealScenario.DoneMarker);
            var done = File.Exists(marker);
            if (!done)
                Debug.LogError($"Sim2Real: Play mode ended before the scenario completed (no {marker})");
            if (Application.isBatchMode)
                EditorApplication.Exit(done ? 0 : 1);
        }
    }
}
