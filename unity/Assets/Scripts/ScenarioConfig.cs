// The scenario JSON written by sim2real_faces/unity/scenario.py (schema "sim2real-faces/unity-scenario/1").
// Field names are the JSON keys (snake_case); sections mirror the Python params of stage generate
// (generate.background / placement / head / lights / camera) so both backends read the same numbers.
// Unknown or missing keys are errors: when the Python side gains a parameter, this file must follow.
using System;
using System.Collections.Generic;
using System.IO;
using Newtonsoft.Json;
using Newtonsoft.Json.Linq;
using UnityEngine;

namespace Sim2Real
{
    public class ScenarioConfig
    {
        public const string Schema = "sim2real-faces/unity-scenario/1";

        [JsonRequired] public string schema;
        [JsonRequired] public int iterations;
        [JsonRequired] public uint seed;
        [JsonRequired] public string output_dir;
        [JsonRequired] public string output_format; // "solo" or "perception" (legacy 0.x layout)
        [JsonRequired] public int width;
        [JsonRequired] public int height;
        [JsonRequired] public int msaa;
        [JsonRequired] public CameraConfig camera;
        [JsonRequired] public BackgroundConfig background;
        [JsonRequired] public PlacementConfig placement;
        [JsonRequired] public HeadConfig head;
        [JsonRequired] public LightsConfig lights;
        [JsonRequired] public Dictionary<string, List<string>> classes; // class -> expression presets
        [JsonRequired] public float[] intensity;
        [JsonRequired] public float[] intensity_steps; // morph targets "<preset>@<step:0.00>" in each GLB
        [JsonRequired] public Dictionary<string, float> tears; // class -> probability of showing the GLB's "tears" node
        [JsonRequired] public List<IdentityConfig> identities;
        [JsonRequired] public List<string> shape_assets; // GLBs of the background shapes, by shape name
        [JsonRequired] public List<PlanEntry> plan; // class + identity per iteration; empty -> sampled

        public static ScenarioConfig Load(string path)
        {
            if (string.IsNullOrEmpty(path) || !File.Exists(path))
                throw new ArgumentException($"Sim2Real: scenario JSON not found at '{path}' (-sim2realScenario <path>)");
            var settings = new JsonSerializerSettings { MissingMemberHandling = MissingMemberHandling.Error };
            var config = JsonConvert.DeserializeObject<ScenarioConfig>(File.ReadAllText(path), settings);
            if (config.schema != Schema)
                throw new InvalidDataException($"Sim2Real: {path} has schema '{config.schema}', expected '{Schema}'");
            if (config.iterations < 1 || config.identities.Count == 0 || config.classes.Count == 0)
                throw new InvalidDataException($"Sim2Real: {path} needs iterations >= 1, identities and classes");
            if (config.plan.Count != 0 && config.plan.Count != config.iterations)
                throw new InvalidDataException($"Sim2Real: {path} plan has {config.plan.Count} entries for {config.iterations} iterations");
            return config;
        }

        public static string ArgumentPath()
        {
            var args = Environment.GetCommandLineArgs();
            for (var i = 0; i < args.Length - 1; i++)
                if (args[i] == "-sim2realScenario")
                    return args[i + 1];
            return null;
        }
    }

    public class CameraConfig
    {
        [JsonRequired] public string projection; // orthographic | perspective
        [JsonRequired] public float fov_deg;
    }

    // Wall geometry in wall units: one unit is a sixth of the view height (the study's camera of size 3).
    public class BackgroundConfig
    {
        [JsonRequired] public bool enabled;
        [JsonRequired] public int layers;
        [JsonRequired] public float separation;
        [JsonRequired] public float depth;
        [JsonRequired] public float margin;
        [JsonRequired] public float[] scale;
        [JsonRequired] public List<string> shapes;
        [JsonRequired] public List<string> patterns;
        [JsonRequired] public float[] saturation; // pattern colours: hue uniform, saturation and value uniform
        [JsonRequired] public float[] value;
        [JsonRequired] public float[] hue_offset_deg;
        // Each shape's rotation in the camera frame, degrees per axis (the study: x, y in [-30, 30], z 0):
        // x tilts about the view's right axis, y about its up axis, z spins about the view axis.
        [JsonRequired] public float[] rotation_x_deg;
        [JsonRequired] public float[] rotation_y_deg;
        [JsonRequired] public float[] rotation_z_deg;
        [JsonRequired] public float[] pattern_frequency;
        [JsonRequired] public int candidates;
    }

    // Where the eye centre lands (fractions of the half frame) and the view height at the head (dm).
    public class PlacementConfig
    {
        [JsonRequired] public float[] x;
        [JsonRequired] public float[] y;
        [JsonRequired] public float[] view_height;
    }

    public class HeadConfig
    {
        [JsonRequired] public float[] pitch_deg;
        [JsonRequired] public float[] yaw_deg;
        [JsonRequired] public float[] roll_deg;
        [JsonRequired] public float neck_blend_dm; // not applied: the GLB head turns rigidly (README)
    }

    public class LightsConfig
    {
        [JsonRequired] public float[] intensity;
        [JsonRequired] public float[] color;
        [JsonRequired] public float[] azimuth_deg;
        [JsonRequired] public float[] elevation_deg;
        [JsonRequired] public float[] ambient;
        [JsonRequired] public float exposure;
        [JsonRequired] public string tonemap; // aces | clamp
    }

    public class IdentityConfig
    {
        [JsonRequired] public string name;
        [JsonRequired] public string glb; // relative to the project folder, e.g. Assets/Humans/id00.glb
        [JsonRequired] public Dictionary<string, JToken> labels;
    }

    public class PlanEntry
    {
        [JsonRequired, JsonProperty("class")] public string className;
        [JsonRequired] public string identity;
    }

    // Small helpers shared by the randomizers.
    public static class Ranges
    {
        public static float Check(float[] range, string name)
        {
            if (range == null || range.Length != 2 || range[0] > range[1])
                throw new InvalidDataException($"Sim2Real: {name} must be [min, max]");
            return range[1] - range[0];
        }
    }
}
