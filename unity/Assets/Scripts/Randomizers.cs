// The scenario's randomizers, in execution order: human (identity, expression preset, intensity),
// placement + camera, head rotation about the neck pivot, background wall (shapes, procedural textures,
// hue offset, rotation), two directional lights (intensity and colour applied once), and the reporter
// that writes every sampled value as the "sim2real.sample" metric (see sim2real_faces/unity/perception.py).
// All random numbers come from Perception's samplers, which the scenario reseeds every iteration from
// constants.randomSeed, so a run is reproducible. Value names match the embedded renderer's metadata.
using System;
using System.Collections.Generic;
using System.Linq;
using Newtonsoft.Json;
using UnityEngine;
using UnityEngine.Perception.GroundTruth;
using UnityEngine.Perception.GroundTruth.DataModel;
using UnityEngine.Perception.Randomization.Randomizers;
using UnityEngine.Perception.Randomization.Samplers;
using UnityEngine.Rendering;
using UnityEngine.Rendering.HighDefinition;

namespace Sim2Real
{
    public abstract class Sim2RealRandomizer : Randomizer
    {
        readonly UniformSampler m_Unit = new UniformSampler(0f, 1f);

        public readonly Dictionary<string, object> values = new Dictionary<string, object>();

        protected ScenarioConfig Config => ((Sim2RealScenario)scenario).config;

        protected float U(float lo, float hi) => lo + (hi - lo) * m_Unit.Sample();

        protected float U(float[] range) => U(range[0], range[1]);

        protected int Index(int count) => Mathf.Min(count - 1, (int)(m_Unit.Sample() * count));

        protected static Transform Find(string path)
        {
            var found = GameObject.Find(path);
            if (found == null)
                throw new InvalidOperationException($"Sim2Real: scene object '{path}' missing (scene built by BatchGenerate?)");
            return found.transform;
        }
    }

    // Picks class + identity (from the plan, or uniformly), an expression preset of the class and an
    // intensity; sets the GLB's morph targets "<preset>@<step>" by linear interpolation between steps.
    [Serializable, AddRandomizerMenu("Sim2Real/Human")]
    public class HumanRandomizer : Sim2RealRandomizer
    {
        public Transform current { get; private set; }

        protected override void OnIterationStart()
        {
            values.Clear();
            var config = Config;
            string className, identity;
            var iteration = scenario.currentIteration;
            if (config.plan.Count > 0)
            {
                className = config.plan[iteration].className;
                identity = config.plan[iteration].identity;
            }
            else
            {
                var classes = config.classes.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
                className = classes[Index(classes.Count)];
                identity = config.identities[Index(config.identities.Count)].name;
            }
            var presets = config.classes[className];
            var preset = presets[Index(presets.Count)];
            var intensity = U(config.intensity);

            var root = Find("Sim2Real/Humans");
            current = null;
            foreach (Transform human in root)
            {
                var active = human.name == identity;
                human.gameObject.SetActive(active);
                if (active) current = human;
            }
            if (current == null)
                throw new InvalidOperationException($"Sim2Real: identity '{identity}' not instantiated under Sim2Real/Humans");
            ApplyExpression(current, preset, intensity, config.intensity_steps);
            var draw = U(0f, 1f); // drawn for every class, so the other randomizers' streams do not shift
            var tears = config.tears.TryGetValue(className, out var probability) && draw < probability;
            foreach (var node in current.GetComponentsInChildren<Transform>(true))
                if (node.name == "tears")
                    node.gameObject.SetActive(tears);

            values["class"] = className;
            values["identity"] = identity;
            values["expression"] = preset;
            values["intensity"] = intensity;
            values["tears"] = tears ? 1 : 0;
        }

        public static void ApplyExpression(Transform human, string preset, float intensity, float[] steps)
        {
            // Piecewise-linear between the baked steps (0 = neutral): weights on the two neighbours.
            var upper = Array.FindIndex(steps, s => s >= intensity - 1e-6f);
            if (upper < 0) upper = steps.Length - 1;
            var lo = upper == 0 ? 0f : steps[upper - 1];
            var hi = steps[upper];
            var t = hi > lo ? Mathf.Clamp01((intensity - lo) / (hi - lo)) : 1f;
            var wanted = new Dictionary<string, float> { [Target(preset, hi)] = 100f * t };
            if (upper > 0) wanted[Target(preset, lo)] = 100f * (1f - t);
            var found = 0;
            foreach (var renderer in human.GetComponentsInChildren<SkinnedMeshRenderer>(true))
            {
                var mesh = renderer.sharedMesh;
                for (var i = 0; i < mesh.blendShapeCount; i++)
                {
                    var name = mesh.GetBlendShapeName(i);
                    var weight = wanted.TryGetValue(name, out var w) ? w : 0f;
                    if (wanted.ContainsKey(name)) found++;
                    renderer.SetBlendShapeWeight(i, weight);
                }
            }
            if (found == 0)
                throw new InvalidOperationException($"Sim2Real: {human.name} has no morph target {Target(preset, hi)} (re-export the humans)");
        }

        public static string Target(string preset, float step) =>
            $"{preset}@{step.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture)}";
    }

    // Places the camera so that the identity's eye centre lands at (place_x, place_y) of the half frame
    // and the view is view_height_dm tall at the head (orthographic size, or perspective distance).
    [Serializable, AddRandomizerMenu("Sim2Real/Placement")]
    public class PlacementRandomizer : Sim2RealRandomizer
    {
        public Vector3 eyeCenter { get; private set; }
        public Vector3 faceForward { get; private set; }
        public float viewHeight { get; private set; }

        protected override void OnIterationStart()
        {
            values.Clear();
            var config = Config;
            var human = scenario.GetRandomizer<HumanRandomizer>().current;
            human.localPosition = Vector3.zero;
            human.localRotation = Quaternion.identity;
            eyeCenter = human.GetComponentsInChildren<Transform>(true).First(t => t.name == "eye_center").position;
            var forwardMarker = human.GetComponentsInChildren<Transform>(true).First(t => t.name == "face_forward");
            faceForward = (forwardMarker.position - eyeCenter).normalized;

            var placeX = U(config.placement.x);
            var placeY = U(config.placement.y);
            viewHeight = U(config.placement.view_height);
            var halfH = viewHeight / 2f;
            var halfW = halfH * config.width / config.height;

            var camera = Find("Sim2Real/Camera").GetComponent<Camera>();
            var look = -faceForward;
            camera.transform.rotation = Quaternion.LookRotation(look, Vector3.up);
            float distance;
            if (config.camera.projection == "orthographic")
            {
                camera.orthographic = true;
                camera.orthographicSize = halfH;
                distance = 40f;
            }
            else
            {
                camera.orthographic = false;
                camera.fieldOfView = config.camera.fov_deg;
                distance = halfH / Mathf.Tan(0.5f * config.camera.fov_deg * Mathf.Deg2Rad);
            }
            var right = camera.transform.right;
            var up = camera.transform.up;
            camera.transform.position = eyeCenter - look * distance - right * (placeX * halfW) - up * (placeY * halfH);
            camera.nearClipPlane = 0.1f;
            camera.farClipPlane = distance + 200f;

            values["place_x"] = placeX;
            values["place_y"] = placeY;
            values["view_height_dm"] = viewHeight;
        }
    }

    // Pitch (positive: looks down), yaw (positive: turns to the image's right) and roll about the neck
    // pivot; the whole GLB turns rigidly (as in the study), generate.head.neck_blend_dm is not applied.
    [Serializable, AddRandomizerMenu("Sim2Real/Head Rotation")]
    public class HeadRotationRandomizer : Sim2RealRandomizer
    {
        protected override void OnIterationStart()
        {
            values.Clear();
            var config = Config;
            var human = scenario.GetRandomizer<HumanRandomizer>().current;
            var placement = scenario.GetRandomizer<PlacementRandomizer>();
            var camera = Find("Sim2Real/Camera");
            var pivot = human.GetComponentsInChildren<Transform>(true).First(t => t.name == "neck_pivot").position;
            var forward = placement.faceForward;
            var pitchAxis = Vector3.Cross(Vector3.up, forward);
            var yawAxis = Vector3.Dot(Vector3.Cross(Vector3.up, forward), camera.right) > 0 ? Vector3.up : Vector3.down;
            var pitch = U(config.head.pitch_deg);
            var yaw = U(config.head.yaw_deg);
            var roll = U(config.head.roll_deg);
            human.RotateAround(pivot, forward, roll);
            human.RotateAround(pivot, pitchAxis, pitch);
            human.RotateAround(pivot, yawAxis, yaw);
            values["head_pitch_deg"] = pitch;
            values["head_yaw_deg"] = yaw;
            values["head_roll_deg"] = roll;
        }
    }

    // The wall of shapes behind the head: layers of shapes at least `separation` apart (dart throwing),
    // each with a random rotation, size, procedural two-colour texture and hue offset.
    [Serializable, AddRandomizerMenu("Sim2Real/Background Wall")]
    public class BackgroundWallRandomizer : Sim2RealRandomizer
    {
        const int TextureSize = 64;
        readonly List<GameObject> m_Pool = new List<GameObject>();
        readonly List<Texture2D> m_Textures = new List<Texture2D>();
        MaterialPropertyBlock m_Block;

        protected override void OnIterationStart()
        {
            values.Clear();
            m_Block ??= new MaterialPropertyBlock();
            foreach (var go in m_Pool) go.SetActive(false);
            var config = Config;
            var bg = config.background;
            if (!bg.enabled || bg.layers == 0)
            {
                values["bg_objects"] = 0;
                values["bg_hue_offset_mean_deg"] = 0f;
                return;
            }
            var placement = scenario.GetRandomizer<PlacementRandomizer>();
            var camera = Find("Sim2Real/Camera");
            var halfH = placement.viewHeight / 2f;
            var halfW = halfH * config.width / config.height;
            var unit = 2f * halfH / 6f;
            var width = 2f * (halfW / unit + bg.margin);
            var height = 2f * (halfH / unit + bg.margin);
            var prototypes = Find("Sim2Real/ShapePrototypes");
            var used = 0;
            var hueSum = 0f;
            for (var layer = 0; layer < bg.layers; layer++)
            {
                foreach (var p in DartThrow(width, height, bg.separation, bg.candidates))
                {
                    var shape = bg.shapes[Index(bg.shapes.Count)];
                    var go = Take(used++, prototypes.Find(shape));
                    go.transform.position = placement.eyeCenter
                        + camera.right * ((p.x - width / 2f) * unit)
                        + camera.up * ((p.y - height / 2f) * unit)
                        + camera.forward * ((bg.depth + layer * bg.separation) * unit);
                    // Extrinsic x, then y, then z about the camera's axes (the embedded renderer's
                    // Rotation.from_euler("xyz") about the view axes).
                    var rx = U(bg.rotation_x_deg);
                    var ry = U(bg.rotation_y_deg);
                    var rz = U(bg.rotation_z_deg);
                    go.transform.rotation = Quaternion.AngleAxis(rz, camera.forward)
                        * Quaternion.AngleAxis(ry, camera.up) * Quaternion.AngleAxis(rx, camera.right)
                        * camera.rotation;
                    go.transform.localScale = Vector3.one * (U(bg.scale) * unit);
                    var a = Color.HSVToRGB(U(0f, 1f), U(bg.saturation), U(bg.value));
                    var b = Color.HSVToRGB(U(0f, 1f), U(bg.saturation), U(bg.value));
                    var pattern = bg.patterns[Index(bg.patterns.Count)];
                    var frequency = Mathf.Exp(U(Mathf.Log(bg.pattern_frequency[0]), Mathf.Log(bg.pattern_frequency[1])));
                    var angle = U(0f, 2f * Mathf.PI);
                    var hue = U(bg.hue_offset_deg);
                    hueSum += hue;
                    var texture = Texture(used - 1);
                    Patterns.Fill(texture, pattern, Patterns.Hue(a, hue), Patterns.Hue(b, hue), frequency, angle, U(0f, 1000f));
                    foreach (var r in go.GetComponentsInChildren<Renderer>())
                    {
                        r.GetPropertyBlock(m_Block);
                        m_Block.SetTexture("_BaseColorMap", texture); // HDRP/Lit
                        m_Block.SetColor("_BaseColor", Color.white);
                        r.SetPropertyBlock(m_Block);
                    }
                }
            }
            values["bg_objects"] = used;
            values["bg_hue_offset_mean_deg"] = used > 0 ? hueSum / used : 0f;
        }

        List<Vector2> DartThrow(float width, float height, float separation, int candidates)
        {
            var points = new List<Vector2>();
            var trials = Mathf.CeilToInt(candidates * width * height / (separation * separation));
            for (var i = 0; i < trials; i++)
            {
                var p = new Vector2(U(0f, width), U(0f, height));
                var free = true;
                foreach (var q in points)
                    if ((q - p).sqrMagnitude < separation * separation) { free = false; break; }
                if (free) points.Add(p);
            }
            return points;
        }

        GameObject Take(int index, Transform prototype)
        {
            if (prototype == null)
                throw new InvalidOperationException("Sim2Real: a background shape has no prototype (re-export the shapes)");
            while (m_Pool.Count <= index) m_Pool.Add(null);
            var go = m_Pool[index];
            if (go == null || go.name != prototype.name)
            {
                if (go != null) UnityEngine.Object.Destroy(go);
                go = UnityEngine.Object.Instantiate(prototype.gameObject, Find("Sim2Real/Background"));
                go.name = prototype.name;
                m_Pool[index] = go;
            }
            go.SetActive(true);
            return go;
        }

        Texture2D Texture(int index)
        {
            while (m_Textures.Count <= index)
                m_Textures.Add(new Texture2D(TextureSize, TextureSize, TextureFormat.RGBA32, false) { wrapMode = TextureWrapMode.Repeat });
            return m_Textures[index];
        }
    }

    // Two directional lights at -azimuth (left) and +azimuth (right) of the camera axis, elevation
    // above the horizon; intensity and colour per channel drawn per light, applied once (the study's
    // bug applied the intensity twice). Grey ambient light from a uniform gradient sky; fixed exposure
    // and tone mapping from the global HDRP volume.
    [Serializable, AddRandomizerMenu("Sim2Real/Lights")]
    public class LightRandomizer : Sim2RealRandomizer
    {
        protected override void OnIterationStart()
        {
            values.Clear();
            var config = Config.lights;
            var camera = Find("Sim2Real/Camera");
            foreach (var (side, sign) in new[] { ("left", -1f), ("right", 1f) })
            {
                var light = Find(side == "left" ? "Sim2Real/LightLeft" : "Sim2Real/LightRight");
                var intensity = U(config.intensity);
                var color = new Color(U(config.color), U(config.color), U(config.color));
                var azimuth = U(config.azimuth_deg);
                var elevation = U(config.elevation_deg);
                var a = sign * azimuth * Mathf.Deg2Rad;
                var e = elevation * Mathf.Deg2Rad;
                var towardsLight = Mathf.Cos(e) * Mathf.Sin(a) * camera.right + Mathf.Sin(e) * camera.up
                    - Mathf.Cos(e) * Mathf.Cos(a) * camera.forward;
                light.rotation = Quaternion.LookRotation(-towardsLight, Vector3.up);
                var data = light.GetComponent<HDAdditionalLightData>();
                data.SetColor(color);
                data.SetIntensity(intensity, LightUnit.Lux); // once
                values[$"light_{side}_intensity"] = intensity;
                values[$"light_{side}_r"] = color.r;
                values[$"light_{side}_g"] = color.g;
                values[$"light_{side}_b"] = color.b;
                values[$"light_{side}_azimuth_deg"] = azimuth;
                values[$"light_{side}_elevation_deg"] = elevation;
            }
            var ambient = U(config.ambient);
            values["light_ambient"] = ambient;

            var profile = Find("Sim2Real/Volume").GetComponent<Volume>().profile;
            var grey = new Color(ambient, ambient, ambient);
            if (profile.TryGet<GradientSky>(out var sky))
            {
                sky.top.Override(grey);
                sky.middle.Override(grey);
                sky.bottom.Override(grey);
            }
            if (profile.TryGet<Tonemapping>(out var tonemapping))
                tonemapping.mode.Override(config.tonemap == "aces" ? TonemappingMode.ACES : TonemappingMode.None);
            if (profile.TryGet<Exposure>(out var exposure))
            {
                // HDRP: pixel = albedo / pi * E * cos / (1.2 * 2^EV100). EV chosen so that pixel =
                // albedo * E * cos * lights.exposure, the embedded renderer's Lambert scale.
                exposure.mode.Override(ExposureMode.Fixed);
                exposure.fixedExposure.Override(-Mathf.Log(1.2f * Mathf.PI * config.exposure, 2f));
            }
        }
    }

    // Reports every value of this iteration as one GenericMetric "sim2real.sample" whose value is a JSON
    // object string (schema sim2real-faces/sample/1), attached to the camera's capture of this frame.
    [Serializable, AddRandomizerMenu("Sim2Real/Sample Metadata Reporter")]
    public class SampleMetadataReporter : Sim2RealRandomizer
    {
        public const string MetricId = "sim2real.sample";
        public const string SampleSchema = "sim2real-faces/sample/1";
        MetricDefinition m_Definition;

        protected override void OnScenarioStart()
        {
            m_Definition = new MetricDefinition(MetricId, "Per-image labels and randomizer values of the sim2real-faces scenario (JSON object)");
            DatasetCapture.RegisterMetric(m_Definition);
        }

        protected override void OnIterationStart()
        {
            var sample = new SortedDictionary<string, object>(StringComparer.Ordinal)
            {
                ["schema"] = SampleSchema,
                ["iteration"] = scenario.currentIteration,
            };
            foreach (var randomizer in scenario.randomizers.OfType<Sim2RealRandomizer>())
                foreach (var pair in randomizer.values)
                    sample[pair.Key] = pair.Value;
            var json = JsonConvert.SerializeObject(sample);
            DatasetCapture.ReportMetric(m_Definition, new GenericMetric(json, m_Definition, "camera"));
        }
    }
}
