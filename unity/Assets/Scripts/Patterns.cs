// Procedural two-colour patterns for the background shapes, the same families as the embedded
// renderer's shader (sim2real_faces/render/gl.py PATTERNS): solid, stripes, checker, noise, gradient,
// dots, rings, waves, marble. Colours are hue-rotated (the HueOffset randomizer of the study).
using System;
using UnityEngine;

namespace Sim2Real
{
    public static class Patterns
    {
        public static Color Hue(Color c, float degrees)
        {
            Color.RGBToHSV(c, out var h, out var s, out var v);
            h = Mathf.Repeat(h + degrees / 360f, 1f);
            return Color.HSVToRGB(h, s, v);
        }

        public static void Fill(Texture2D texture, string pattern, Color a, Color b, float frequency, float angle, float seed)
        {
            var n = texture.width;
            var pixels = new Color32[n * n];
            var ca = Mathf.Cos(angle);
            var sa = Mathf.Sin(angle);
            for (var y = 0; y < n; y++)
            for (var x = 0; x < n; x++)
            {
                var u = (x + 0.5f) / n * frequency;
                var v = (y + 0.5f) / n * frequency;
                var qx = ca * u - sa * v;
                var qy = sa * u + ca * v;
                var t = Mask(pattern, qx, qy, frequency, seed);
                pixels[y * n + x] = Color.Lerp(a, b, t);
            }
            texture.SetPixels32(pixels);
            texture.Apply(false);
        }

        static float Mask(string pattern, float x, float y, float frequency, float seed)
        {
            switch (pattern)
            {
                case "solid": return 0f;
                case "stripes": return Frac(x) >= 0.5f ? 1f : 0f;
                case "checker": return Mathf.Repeat(Mathf.Floor(x) + Mathf.Floor(y), 2f);
                case "noise": return Fbm(x + seed, y - seed);
                case "gradient": return Mathf.Clamp01(0.5f + 0.5f * x / Mathf.Max(frequency, 1e-3f));
                case "dots": return new Vector2(Frac(x) - 0.5f, Frac(y) - 0.5f).magnitude <= 0.3f ? 1f : 0f;
                case "rings": return Frac(Mathf.Sqrt(x * x + y * y)) >= 0.5f ? 1f : 0f;
                case "waves": return 0.5f + 0.5f * Mathf.Sin(2f * Mathf.PI * (x + 0.3f * Mathf.Sin(2f * Mathf.PI * y)));
                case "marble": return 0.5f + 0.5f * Mathf.Sin(2f * Mathf.PI * x + 6f * Fbm(x + seed, y + seed));
                default: throw new ArgumentException($"Sim2Real: unknown background pattern '{pattern}'");
            }
        }

        static float Frac(float v) => v - Mathf.Floor(v);

        static float Fbm(float x, float y)
        {
            var sum = 0f;
            var amplitude = 0.5f;
            for (var octave = 0; octave < 4; octave++)
            {
                sum += amplitude * Mathf.PerlinNoise(x, y);
                x *= 2f;
                y *= 2f;
                amplitude *= 0.5f;
            }
            return Mathf.Clamp01(sum / 0.9375f);
        }
    }
}
