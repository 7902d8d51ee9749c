# language: sv
@criterion:tech-directory @needs:directory @needs:fhir_base
Egenskap: HSA/KiV stämmer med organisationen i den nya journalen
  Inför varje driftstart granskas HSA-id och KiV mot organisationsstrukturen i journalen.
  Varje organisation i den nya journalen ska ha ett HSA-id som finns i katalogen, varje
  vårdenhet i katalogen ska finnas i journalen, och varje HSA-id ska vara välformat
  (SE, tio siffror, bindestreck, bokstäver och siffror). Skillnaderna listas per plats.

  @per_site
  @id:tek-directory-01
  Scenario: Platsens enheter har samma HSA-id i journalen som i HSA/KiV
    Givet organisationen i den nya journalen och enheterna i HSA/KiV
    Så har varje enhet på platsen i journalen ett HSA-id som finns i HSA/KiV
    Och finns varje enhet på platsen i HSA/KiV också i journalen
    Och är varje HSA-id på platsen välformat

  @id:tek-directory-02
  Scenario: Varje organisation och katalogenhet hör till en plats i planen
    Givet organisationen i den nya journalen och enheterna i HSA/KiV
    Så hör varje organisation i journalen och varje enhet i HSA/KiV till en plats i planen
